package keymat

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"fmt"
)

// Encryption and decryption for DSM's /crypto/v1/encrypt and /decrypt:
// AES in GCM, CBC (PKCS#7 padding) and CTR; RSA with OAEP (MGF1 with
// SHA-1 or SHA-256, the same hash for the label) or PKCS#1 v1.5.

// Cipher modes and RSA paddings (DSM's spelling).
const (
	ModeGCM      = "GCM"
	ModeCBC      = "CBC"
	ModeCTR      = "CTR"
	PadOAEP      = "OAEP"
	PadPKCS1v15  = "PKCS1_V15"
	gcmNonceSize = 12
)

// CryptParams are the parameters of one encryption or decryption.
type CryptParams struct {
	Mode    string      // AES: ModeGCM, ModeCBC or ModeCTR; RSA: PadOAEP or PadPKCS1v15
	IV      []byte      // AES: nil on encrypt generates one
	AD      []byte      // GCM only
	TagLen  int         // GCM: tag length in bytes (12–16)
	Tag     []byte      // GCM decrypt
	OAEP    crypto.Hash // OAEP: the MGF1 (and label) hash
	Label   []byte      // OAEP label
	Private []byte      // RSA decrypt: PKCS#8 private key; AES: the raw key
	Public  []byte      // RSA encrypt: PKIX public key
}

// ErrDecrypt is the one answer to every failed decryption (wrong key, IV,
// tag, associated data, padding or ciphertext): which check failed is
// not said, so that the answer is no padding or tag oracle.
var ErrDecrypt = &Error{Msg: "decryption failed: the ciphertext, IV, tag or associated data do not match this key"}

func newAES(key []byte) (cipher.Block, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("stored AES key: %w", err)
	}
	return b, nil
}

// EncryptAES encrypts plain with the raw AES key. It returns the
// ciphertext, the IV used (generated when p.IV is nil) and, for GCM, the
// tag.
func EncryptAES(key []byte, p CryptParams, plain []byte) (ct, iv, tag []byte, err error) {
	block, err := newAES(key)
	if err != nil {
		return nil, nil, nil, err
	}
	ivLen := aes.BlockSize
	if p.Mode == ModeGCM {
		ivLen = gcmNonceSize
	}
	iv = p.IV
	if iv == nil {
		iv = random(ivLen)
	} else if len(iv) != ivLen {
		return nil, nil, nil, errorf("iv must be %d bytes for AES %s", ivLen, p.Mode)
	}
	switch p.Mode {
	case ModeGCM:
		aead, err := gcm(block, p.TagLen)
		if err != nil {
			return nil, nil, nil, err
		}
		out := aead.Seal(nil, iv, plain, p.AD)
		n := len(out) - p.TagLen
		return out[:n], iv, out[n:], nil
	case ModeCBC:
		pad := aes.BlockSize - len(plain)%aes.BlockSize
		buf := make([]byte, len(plain)+pad)
		copy(buf, plain)
		for i := len(plain); i < len(buf); i++ {
			buf[i] = byte(pad)
		}
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
		return buf, iv, nil, nil
	case ModeCTR:
		out := make([]byte, len(plain))
		cipher.NewCTR(block, iv).XORKeyStream(out, plain)
		return out, iv, nil, nil
	}
	return nil, nil, nil, errorf("unsupported AES mode (use GCM, CBC or CTR)")
}

// DecryptAES reverses EncryptAES. Any failure is ErrDecrypt.
func DecryptAES(key []byte, p CryptParams, ct []byte) ([]byte, error) {
	block, err := newAES(key)
	if err != nil {
		return nil, err
	}
	ivLen := aes.BlockSize
	if p.Mode == ModeGCM {
		ivLen = gcmNonceSize
	}
	if len(p.IV) != ivLen {
		return nil, errorf("iv must be %d bytes for AES %s", ivLen, p.Mode)
	}
	switch p.Mode {
	case ModeGCM:
		if len(p.Tag) != p.TagLen {
			return nil, errorf("tag must be tag_len bits long")
		}
		aead, err := gcm(block, p.TagLen)
		if err != nil {
			return nil, err
		}
		in := make([]byte, 0, len(ct)+len(p.Tag))
		in = append(append(in, ct...), p.Tag...)
		out, err := aead.Open(nil, p.IV, in, p.AD)
		if err != nil {
			return nil, ErrDecrypt
		}
		return out, nil
	case ModeCBC:
		if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
			return nil, ErrDecrypt
		}
		buf := make([]byte, len(ct))
		cipher.NewCBCDecrypter(block, p.IV).CryptBlocks(buf, ct)
		n, ok := unpad(buf)
		if !ok {
			clear(buf)
			return nil, ErrDecrypt
		}
		return buf[:n], nil
	case ModeCTR:
		out := make([]byte, len(ct))
		cipher.NewCTR(block, p.IV).XORKeyStream(out, ct)
		return out, nil
	}
	return nil, errorf("unsupported AES mode (use GCM, CBC or CTR)")
}

// unpad checks PKCS#7 padding in constant time.
func unpad(buf []byte) (int, bool) {
	pad := int(buf[len(buf)-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, pad)
		eq := subtle.ConstantTimeByteEq(buf[len(buf)-i], byte(pad))
		good &= subtle.ConstantTimeSelect(inPad, eq, 1)
	}
	return len(buf) - pad, good == 1
}

func gcm(block cipher.Block, tagLen int) (cipher.AEAD, error) {
	if tagLen < 12 || tagLen > 16 {
		return nil, errorf("tag_len must be 96, 104, 112, 120 or 128 bits")
	}
	aead, err := cipher.NewGCMWithTagSize(block, tagLen)
	if err != nil {
		return nil, errorf("tag_len must be 96, 104, 112, 120 or 128 bits")
	}
	return aead, nil
}

func oaepHash(h crypto.Hash) (crypto.Hash, error) {
	switch h {
	case crypto.SHA1, crypto.SHA256:
		return h, nil
	case 0:
		return crypto.SHA256, nil
	}
	return 0, errorf("OAEP supports MGF1 with SHA1 or SHA256")
}

// rsaPadded runs the operation of the padding p asks for: oaep (the
// default) with its hash, or pkcs1, which takes no label. A bad choice of
// padding is reported as such; a failed operation is failed.
func rsaPadded(p CryptParams, oaep func(h crypto.Hash) ([]byte, error), pkcs1 func() ([]byte, error), failed error) ([]byte, error) {
	var out []byte
	var err error
	switch p.Mode {
	case PadOAEP, "":
		h, herr := oaepHash(p.OAEP)
		if herr != nil {
			return nil, herr
		}
		out, err = oaep(h)
	case PadPKCS1v15:
		if p.Label != nil {
			return nil, errorf("label applies to OAEP only")
		}
		out, err = pkcs1()
	default:
		return nil, errorf("unsupported RSA padding (use OAEP or PKCS1_V15)")
	}
	if err != nil {
		return nil, failed
	}
	return out, nil
}

// EncryptRSA encrypts plain with the PKIX public key p.Public.
func EncryptRSA(p CryptParams, plain []byte) ([]byte, error) {
	pub, err := storedAs[*rsa.PublicKey](p.Public, parsePublic, "encryption needs an RSA key")
	if err != nil {
		return nil, err
	}
	return rsaPadded(p,
		func(h crypto.Hash) ([]byte, error) { return rsa.EncryptOAEP(h.New(), rand.Reader, pub, plain, p.Label) },
		func() ([]byte, error) { return rsa.EncryptPKCS1v15(rand.Reader, pub, plain) },
		errorf("plain is too long for this key and padding"))
}

// DecryptRSA decrypts ct with the PKCS#8 private key p.Private. Any
// failure of the ciphertext is ErrDecrypt.
func DecryptRSA(p CryptParams, ct []byte) ([]byte, error) {
	key, err := storedAs[*rsa.PrivateKey](p.Private, parsePrivate, "decryption needs an RSA private key")
	if err != nil {
		return nil, err
	}
	return rsaPadded(p,
		func(h crypto.Hash) ([]byte, error) { return rsa.DecryptOAEP(h.New(), nil, key, ct, p.Label) },
		func() ([]byte, error) { return rsa.DecryptPKCS1v15(nil, key, ct) },
		ErrDecrypt)
}
