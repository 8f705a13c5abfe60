// Package keymat generates, parses and uses key material for the DSM
// dialect's security objects: AES, HMAC, RSA (2048–4096) and EC (P-256,
// P-384, P-521) keys, opaque secrets and X.509 certificates. It only ever
// handles plaintext in memory; callers seal what it returns before storing
// it. Randomness comes from crypto/rand.
//
// Encodings: private keys are PKCS#8 DER, public keys DER
// SubjectPublicKeyInfo (PKIX), certificates DER, symmetric keys raw bytes.
// RSA signatures are PKCS#1 v1.5 or PSS (salt length = hash length);
// ECDSA signatures are ASN.1 DER.
package keymat

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	_ "crypto/sha1" // register hashes usable by Hash
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// Error is an error caused by the caller's input. Its message is safe to
// show to a client; it never contains key material.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func errorf(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// Object types understood by this package (DSM's spelling).
const (
	AES         = "AES"
	RSA         = "RSA"
	EC          = "EC"
	HMAC        = "HMAC"
	SECRET      = "SECRET"
	OPAQUE      = "OPAQUE"
	CERTIFICATE = "CERTIFICATE"
)

// Material is key material and what can be said about it publicly.
type Material struct {
	ObjType    string
	KeySize    int    // bits (RSA modulus, symmetric key length, curve size for EC)
	Curve      string // EC: NistP256, NistP384 or NistP521
	Secret     []byte // what is sealed: PKCS#8, raw key bytes, certificate DER, or PKIX for public-only keys
	PubKey     []byte // PKIX DER of asymmetric objects, else nil
	PublicOnly bool
}

var curves = map[string]elliptic.Curve{
	"NistP256": elliptic.P256(),
	"NistP384": elliptic.P384(),
	"NistP521": elliptic.P521(),
}

func curveName(c elliptic.Curve) (string, bool) {
	for n, k := range curves {
		if k == c {
			return n, true
		}
	}
	return "", false
}

// Generatable reports whether objType can be generated.
func Generatable(objType string) bool {
	switch objType {
	case AES, RSA, EC, HMAC:
		return true
	}
	return false
}

// Generate creates new key material. keySize is in bits (AES: 128, 192 or
// 256; RSA: 2048, 3072 or 4096; HMAC: 112–8192 in multiples of 8); curve
// names the EC curve (NistP256, NistP384, NistP521).
func Generate(objType string, keySize int, curve string) (*Material, error) {
	switch objType {
	case AES:
		if keySize != 128 && keySize != 192 && keySize != 256 {
			return nil, errorf("AES key_size must be 128, 192 or 256")
		}
		return &Material{ObjType: AES, KeySize: keySize, Secret: random(keySize / 8)}, nil
	case HMAC:
		if keySize < 112 || keySize > 8192 || keySize%8 != 0 {
			return nil, errorf("HMAC key_size must be a multiple of 8 between 112 and 8192")
		}
		return &Material{ObjType: HMAC, KeySize: keySize, Secret: random(keySize / 8)}, nil
	case RSA:
		if keySize != 2048 && keySize != 3072 && keySize != 4096 {
			return nil, errorf("RSA key_size must be 2048, 3072 or 4096")
		}
		k, err := rsa.GenerateKey(rand.Reader, keySize)
		if err != nil {
			return nil, fmt.Errorf("generate RSA key: %w", err)
		}
		return fromPrivate(k)
	case EC:
		c, ok := curves[curve]
		if !ok {
			return nil, errorf("elliptic_curve must be NistP256, NistP384 or NistP521")
		}
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate EC key: %w", err)
		}
		return fromPrivate(k)
	}
	return nil, errorf("security objects of type %s cannot be generated", objType)
}

func random(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never happens on a supported platform
	}
	return b
}

func fromPrivate(k crypto.Signer) (*Material, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	m, err := fromPublic(k.Public())
	if err != nil {
		return nil, err
	}
	m.Secret, m.PublicOnly = der, false
	return m, nil
}

func fromPublic(pub crypto.PublicKey) (*Material, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	m := &Material{PubKey: der, Secret: der, PublicOnly: true}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		m.ObjType, m.KeySize = RSA, p.N.BitLen()
		if m.KeySize < 1024 || m.KeySize > 8192 {
			return nil, errorf("RSA keys must have 1024 to 8192 bits")
		}
	case *ecdsa.PublicKey:
		name, ok := curveName(p.Curve)
		if !ok {
			return nil, errorf("EC keys must use NistP256, NistP384 or NistP521")
		}
		m.ObjType, m.Curve, m.KeySize = EC, name, p.Curve.Params().BitSize
	default:
		return nil, errorf("unsupported public key type")
	}
	return m, nil
}

// Import parses imported material of objType. RSA and EC values are DER:
// PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private keys, or PKIX public keys
// (the object is then public-only). Certificates are DER or PEM X.509.
// Symmetric keys and secrets are raw bytes.
func Import(objType string, value []byte) (*Material, error) {
	if len(value) == 0 {
		return nil, errorf("value must not be empty")
	}
	switch objType {
	case AES:
		if n := len(value); n != 16 && n != 24 && n != 32 {
			return nil, errorf("an AES key must be 16, 24 or 32 bytes")
		}
		return &Material{ObjType: AES, KeySize: len(value) * 8, Secret: clone(value)}, nil
	case HMAC:
		if len(value) < 14 || len(value) > 1024 {
			return nil, errorf("an HMAC key must be 14 to 1024 bytes")
		}
		return &Material{ObjType: HMAC, KeySize: len(value) * 8, Secret: clone(value)}, nil
	case SECRET, OPAQUE:
		return &Material{ObjType: objType, KeySize: len(value) * 8, Secret: clone(value)}, nil
	case RSA, EC:
		m, err := parseKey(value)
		if err != nil {
			return nil, err
		}
		if m.ObjType != objType {
			return nil, errorf("value holds a %s key, not %s", m.ObjType, objType)
		}
		return m, nil
	case CERTIFICATE:
		der := value
		if b, _ := pem.Decode(value); b != nil && b.Type == "CERTIFICATE" {
			der = b.Bytes
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, errorf("value is not a DER or PEM X.509 certificate")
		}
		m, err := fromPublic(cert.PublicKey)
		if err != nil {
			return nil, err
		}
		m.ObjType, m.Secret = CERTIFICATE, clone(der)
		return m, nil
	}
	return nil, errorf("import of security objects of type %s is not supported", objType)
}

func parseKey(der []byte) (*Material, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			switch k.(type) {
			case *rsa.PrivateKey, *ecdsa.PrivateKey:
				return fromPrivate(s)
			}
		}
		return nil, errorf("unsupported private key type")
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return fromPrivate(k)
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return fromPrivate(k)
	}
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		return fromPublic(k)
	}
	if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return fromPublic(k)
	}
	return nil, errorf("value is not a DER RSA or EC key (PKCS#8, PKCS#1, SEC1 or PKIX)")
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// Hash returns the hash named by a DSM DigestAlgorithm.
func Hash(name string) (crypto.Hash, error) {
	switch name {
	case "SHA1":
		return crypto.SHA1, nil
	case "SHA224":
		return crypto.SHA224, nil
	case "SHA256":
		return crypto.SHA256, nil
	case "SHA384":
		return crypto.SHA384, nil
	case "SHA512":
		return crypto.SHA512, nil
	}
	// The name is not echoed: error messages never repeat request values.
	return 0, errorf("unsupported hash algorithm (use SHA1, SHA224, SHA256, SHA384 or SHA512)")
}

// Padding selects the RSA signature scheme.
type Padding int

const (
	PKCS1v15 Padding = iota
	PSS
)

func (p Padding) name() string {
	if p == PSS {
		return "PSS"
	}
	return "PKCS#1 v1.5"
}

// parsePublic parses an object's stored PKIX public key.
func parsePublic(der []byte) (any, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse stored public key: %w", err)
	}
	return k, nil
}

// parsePrivate parses an object's stored PKCS#8 private key.
func parsePrivate(der []byte) (any, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse stored private key: %w", err)
	}
	return k, nil
}

// storedAs parses stored key material with parse and returns it as a T;
// a key of another type is refused with refusal.
func storedAs[T any](der []byte, parse func([]byte) (any, error), refusal string) (T, error) {
	var zero T
	k, err := parse(der)
	if err != nil {
		return zero, err
	}
	t, ok := k.(T)
	if !ok {
		return zero, errorf("%s", refusal)
	}
	return t, nil
}

// checkDigest checks that digest has the size of a hash h.
func checkDigest(h crypto.Hash, digest []byte) error {
	if len(digest) != h.Size() {
		return errorf("hash must be %d bytes for %v", h.Size(), h)
	}
	return nil
}

// otherMGF reports whether a PSS MGF1 hash mgf (0: h) differs from h,
// which the standard library's PSS does not offer.
func otherMGF(h, mgf crypto.Hash) bool { return mgf != 0 && mgf != h }

// Sign signs digest (already hashed with h) with the PKCS#8 private key
// in secret. For PSS, mgf is the MGF1 hash (0: h), which may differ from h.
func Sign(objType string, secret []byte, h crypto.Hash, digest []byte, pad Padding, mgf crypto.Hash) ([]byte, error) {
	if err := checkDigest(h, digest); err != nil {
		return nil, err
	}
	k, err := ParseSigner(secret)
	if err != nil {
		return nil, err
	}
	return SignWith(k, h, digest, pad, mgf)
}

// ParseSigner parses the PKCS#8 private key in secret, RSA or EC, for
// SignWith. Parsing costs more than an EC signature (the public point is
// recomputed, an RSA key validated), so callers that sign often with one
// key parse it once.
func ParseSigner(secret []byte) (crypto.Signer, error) {
	k, err := parsePrivate(secret)
	if err != nil {
		return nil, err
	}
	switch key := k.(type) {
	case *rsa.PrivateKey:
		return key, nil
	case *ecdsa.PrivateKey:
		return key, nil
	}
	return nil, errors.New("stored private key has an unsupported type")
}

// SignWith signs digest (already hashed with h) with a key from
// ParseSigner. For PSS, mgf is the MGF1 hash (0: h), which may differ
// from h.
func SignWith(k crypto.Signer, h crypto.Hash, digest []byte, pad Padding, mgf crypto.Hash) ([]byte, error) {
	if err := checkDigest(h, digest); err != nil {
		return nil, err
	}
	switch key := k.(type) {
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		switch {
		case pad == PSS && otherMGF(h, mgf):
			return signPSSMGF(key, h, digest, mgf)
		case pad == PSS:
			sig, err = rsa.SignPSS(rand.Reader, key, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h})
		default:
			sig, err = rsa.SignPKCS1v15(rand.Reader, key, h, digest)
		}
		if errors.Is(err, rsa.ErrMessageTooLong) {
			// A key too small for the digest (and, for PSS, its salt): the
			// request's to change, as signPSSMGF says too.
			return nil, errorf("the RSA key is too small for %s with this hash", pad.name())
		}
		return sig, err
	case *ecdsa.PrivateKey:
		return ecdsa.SignASN1(rand.Reader, key, digest)
	}
	return nil, errors.New("stored private key has an unsupported type")
}

// Verify checks sig over digest with the PKIX public key pub. For PSS,
// mgf is the MGF1 hash (0: h).
func Verify(pub []byte, h crypto.Hash, digest, sig []byte, pad Padding, mgf crypto.Hash) (bool, error) {
	if err := checkDigest(h, digest); err != nil {
		return false, err
	}
	k, err := parsePublic(pub)
	if err != nil {
		return false, err
	}
	switch key := k.(type) {
	case *rsa.PublicKey:
		if pad == PSS {
			if otherMGF(h, mgf) {
				return verifyPSSMGF(key, h, digest, sig, mgf), nil
			}
			return rsa.VerifyPSS(key, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: h}) == nil, nil
		}
		return rsa.VerifyPKCS1v15(key, h, digest, sig) == nil, nil
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(key, digest, sig), nil
	}
	return false, errors.New("stored public key has an unsupported type")
}
