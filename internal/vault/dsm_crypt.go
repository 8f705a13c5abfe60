package vault

import (
	"context"
	"errors"
	"fmt"

	"github.com/credvault/credvault/internal/keymat"
)

// Encryption and decryption with security objects.

// CryptInput is an encryption or decryption request.
type CryptInput struct {
	Key     SobjectDescriptor
	Alg     string // "AES" or "RSA"; "" = the key's (decrypt only)
	Mode    string // AES: keymat.ModeGCM, ModeCBC, ModeCTR; RSA: keymat.PadOAEP, PadPKCS1v15 or "" (OAEP)
	MGFHash string // RSA OAEP: MGF1 hash name ("" = SHA256)
	IV      []byte
	AD      []byte // GCM
	TagLen  int    // GCM: bits
	Tag     []byte // GCM decrypt
	Label   []byte // OAEP
	Data    []byte // plaintext (encrypt) or ciphertext (decrypt)
}

// CryptOutput is the result of an encryption.
type CryptOutput struct {
	KID    string
	Cipher []byte
	IV     []byte // AES
	Tag    []byte // GCM
}

// cryptKey resolves and checks the key of an encryption (op = OpEncrypt)
// or decryption (OpDecrypt) and returns it with its key material.
func (s *Service) cryptKey(ctx context.Context, id *Identity, in *CryptInput, op string) (*Sobject, error) {
	if err := id.Require(ActWrite); err != nil {
		return nil, err
	}
	o, err := s.findSobject(ctx, id, in.Key)
	if err != nil {
		return nil, err
	}
	alg := o.ObjType
	if o.ObjType == ObjCertificate {
		alg = ObjRSA // a certificate encrypts with its (RSA) public key
	}
	switch {
	case o.ObjType != ObjAES && o.ObjType != ObjRSA && !(o.ObjType == ObjCertificate && op == OpEncrypt):
		return o, FieldError("key", "objects of this type cannot be used to %s (use an AES or RSA key)", map[string]string{OpEncrypt: "encrypt", OpDecrypt: "decrypt"}[op])
	case in.Alg != "" && in.Alg != alg:
		return o, FieldError("alg", "alg does not match the key's type")
	case op == OpDecrypt && o.PublicOnly:
		return o, FieldError("key", "decryption needs a private key; this object holds only a public key")
	}
	if alg == ObjAES {
		switch in.Mode {
		case keymat.ModeGCM, keymat.ModeCBC, keymat.ModeCTR:
		case "":
			return o, FieldError("mode", "mode is required for AES (GCM, CBC or CTR)")
		default:
			return o, FieldError("mode", "unsupported mode for AES (use GCM, CBC or CTR)")
		}
		switch {
		case in.Mode != keymat.ModeGCM:
		case op == OpEncrypt && in.TagLen == 0:
			return o, FieldError("tag_len", "tag_len is required for GCM")
		case op == OpDecrypt && len(in.Tag) == 0:
			return o, FieldError("tag", "tag is required for GCM")
		}
		if in.Mode != keymat.ModeGCM && (in.AD != nil || in.Tag != nil) {
			return o, FieldError("ad", "ad and tag apply to GCM only")
		}
		if in.Label != nil {
			return o, FieldError("label", "label applies to RSA OAEP only")
		}
	} else {
		switch in.Mode {
		case keymat.PadOAEP, keymat.PadPKCS1v15, "":
		default:
			return o, FieldError("mode", "unsupported mode for RSA (use OAEP or PKCS1_V15)")
		}
		if in.IV != nil || in.AD != nil || in.Tag != nil {
			return o, FieldError("iv", "iv, ad and tag do not apply to RSA")
		}
	}
	if !o.HasOp(op) {
		return o, Errorf(KindPermissionDenied, "%s is not among the security object's key_ops", op)
	}
	if op == OpEncrypt && !o.Active(s.Now()) {
		return o, FieldError("key", "the security object is disabled or deactivated and cannot encrypt")
	}
	if op == OpDecrypt && !o.Enabled {
		return o, FieldError("key", "the security object is disabled")
	}
	return o, nil
}

func (in *CryptInput) params() (keymat.CryptParams, error) {
	p := keymat.CryptParams{Mode: in.Mode, IV: in.IV, AD: in.AD, Tag: in.Tag, Label: in.Label}
	switch {
	case in.TagLen != 0:
		if in.TagLen%8 != 0 {
			return p, FieldError("tag_len", "tag_len must be 96, 104, 112, 120 or 128 bits")
		}
		p.TagLen = in.TagLen / 8
	case in.Mode == keymat.ModeGCM:
		// A decryption is sent no tag_len (DSM's DecryptRequest has
		// none): its tag says how long it is.
		p.TagLen = len(in.Tag)
	}
	if in.MGFHash != "" {
		h, err := keymat.Hash(in.MGFHash)
		if err != nil {
			return p, FieldError("mode", "mode.OAEP.mgf.mgf1.hash: %s", err.Error())
		}
		p.OAEP = h
	}
	return p, nil
}

func cryptErr(err error) error {
	if err == keymat.ErrDecrypt {
		return FieldError("cipher", "%s", keymat.ErrDecrypt.Msg)
	}
	var ke *keymat.Error
	if errors.As(err, &ke) {
		return FieldError("mode", "%s", ke.Msg)
	}
	return err
}

// Encrypt encrypts with an AES key or an RSA public key (an RSA key or an
// RSA certificate) that has ENCRYPT in key_ops. Every call is audited.
func (s *Service) Encrypt(ctx context.Context, id *Identity, in CryptInput) (out *CryptOutput, err error) {
	kid := ""
	defer func() { err = s.auditSobject(ctx, id, "sobject.encrypt", nil, kid, err) }()
	p, err := in.params()
	if err != nil {
		return nil, err
	}
	o, err := s.cryptKey(ctx, id, &in, OpEncrypt)
	if o != nil {
		kid = o.KID
	}
	if err != nil {
		return nil, err
	}
	out = &CryptOutput{KID: o.KID}
	if o.ObjType == ObjAES {
		key, err := s.sealer.Open(o.Ciphertext, sobjectAD(o.AccountID, o.KID, o.Version))
		if err != nil {
			return nil, Wrap(KindInternal, fmt.Errorf("open sobject %s: %w", o.KID, err), "key material cannot be decrypted")
		}
		defer clear(key)
		out.Cipher, out.IV, out.Tag, err = keymat.EncryptAES(key, p, in.Data)
		if err != nil {
			return nil, cryptErr(err)
		}
		return out, nil
	}
	p.Public = o.PubKey
	if out.Cipher, err = keymat.EncryptRSA(p, in.Data); err != nil {
		return nil, cryptErr(err)
	}
	return out, nil
}

// Decrypt decrypts with an AES key or an RSA private key that has DECRYPT
// in key_ops. Every call is audited; without a record there is no
// plaintext.
func (s *Service) Decrypt(ctx context.Context, id *Identity, in CryptInput) (kid string, plain []byte, err error) {
	defer func() {
		if err = s.auditSobject(ctx, id, "sobject.decrypt", nil, kid, err); err != nil {
			clear(plain)
			plain = nil
		}
	}()
	p, err := in.params()
	if err != nil {
		return "", nil, err
	}
	o, err := s.cryptKey(ctx, id, &in, OpDecrypt)
	if o != nil {
		kid = o.KID
	}
	if err != nil {
		return kid, nil, err
	}
	secret, err := s.sealer.Open(o.Ciphertext, sobjectAD(o.AccountID, o.KID, o.Version))
	if err != nil {
		return kid, nil, Wrap(KindInternal, fmt.Errorf("open sobject %s: %w", o.KID, err), "key material cannot be decrypted")
	}
	defer clear(secret)
	if o.ObjType == ObjAES {
		plain, err = keymat.DecryptAES(secret, p, in.Data)
	} else {
		p.Private = secret
		plain, err = keymat.DecryptRSA(p, in.Data)
	}
	if err != nil {
		return kid, nil, cryptErr(err)
	}
	return kid, plain, nil
}
