package keymat

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
)

// RSASSA-PSS with an MGF1 hash other than the message hash (RFC 8017
// §8.1, §9.1). crypto/rsa ties the MGF1 hash to the message hash, but DSM
// clients may choose them independently (the official Go client's
// sign_verify example signs SHA-256 digests with MGF1-SHA-1), so the
// encoding is done here and only the RSA primitive is raw. The private-key
// operation is blinded (a fresh random r per signature) and the result is
// checked with the public key before it is returned, so neither timing nor
// a faulty computation reveals the key. Salt length = message hash length,
// as crypto/rsa's PSSSaltLengthEqualsHash.

// mgf1XOR XORs out with the MGF1 mask of seed under h.
func mgf1XOR(out []byte, h crypto.Hash, seed []byte) {
	var counter [4]byte
	var digest []byte
	hh := h.New()
	done := 0
	for done < len(out) {
		hh.Reset()
		hh.Write(seed)
		hh.Write(counter[:])
		digest = hh.Sum(digest[:0])
		for i := 0; i < len(digest) && done < len(out); i++ {
			out[done] ^= digest[i]
			done++
		}
		for i := 3; i >= 0; i-- {
			counter[i]++
			if counter[i] != 0 {
				break
			}
		}
	}
}

// pssHash is H = Hash(0x00*8 || mHash || salt).
func pssHash(h crypto.Hash, mHash, salt []byte) []byte {
	hh := h.New()
	var zeros [8]byte
	hh.Write(zeros[:])
	hh.Write(mHash)
	hh.Write(salt)
	return hh.Sum(nil)
}

func emsaPSSEncode(mHash []byte, emBits int, salt []byte, h, mgf crypto.Hash) ([]byte, error) {
	hLen, sLen := h.Size(), len(salt)
	emLen := (emBits + 7) / 8
	if emLen < hLen+sLen+2 {
		return nil, errorf("the RSA key is too small for PSS with this hash")
	}
	em := make([]byte, emLen)
	psLen := emLen - sLen - hLen - 2
	db := em[:emLen-hLen-1]
	db[psLen] = 0x01
	copy(db[psLen+1:], salt)
	hash := pssHash(h, mHash, salt)
	copy(em[emLen-hLen-1:], hash)
	mgf1XOR(db, mgf, hash)
	db[0] &= 0xff >> (8*emLen - emBits)
	em[emLen-1] = 0xbc
	return em, nil
}

func emsaPSSVerify(mHash, em []byte, emBits int, h, mgf crypto.Hash) bool {
	hLen := h.Size()
	emLen := (emBits + 7) / 8
	if len(em) != emLen || emLen < hLen+2 || em[emLen-1] != 0xbc {
		return false
	}
	db := bytes.Clone(em[:emLen-hLen-1])
	hash := em[emLen-hLen-1 : emLen-1]
	bitMask := byte(0xff >> (8*emLen - emBits))
	if em[0]&^bitMask != 0 {
		return false
	}
	mgf1XOR(db, mgf, hash)
	db[0] &= bitMask
	i := 0
	for i < len(db) && db[i] == 0 {
		i++
	}
	if i == len(db) || db[i] != 0x01 {
		return false
	}
	salt := db[i+1:]
	return subtle.ConstantTimeCompare(pssHash(h, mHash, salt), hash) == 1
}

func signPSSMGF(key *rsa.PrivateKey, h crypto.Hash, digest []byte, mgf crypto.Hash) ([]byte, error) {
	if !mgf.Available() {
		return nil, errorf("unsupported MGF1 hash")
	}
	salt := make([]byte, h.Size())
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("pss salt: %w", err)
	}
	emBits := key.N.BitLen() - 1
	em, err := emsaPSSEncode(digest, emBits, salt, h, mgf)
	if err != nil {
		return nil, err
	}
	s, err := rsaSignRaw(key, new(big.Int).SetBytes(em))
	if err != nil {
		return nil, err
	}
	return s.FillBytes(make([]byte, key.Size())), nil
}

func verifyPSSMGF(key *rsa.PublicKey, h crypto.Hash, digest, sig []byte, mgf crypto.Hash) bool {
	if !mgf.Available() || len(sig) != key.Size() {
		return false
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(key.N) >= 0 {
		return false
	}
	m := new(big.Int).Exp(s, big.NewInt(int64(key.E)), key.N)
	emBits := key.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	if (m.BitLen()+7)/8 > emLen {
		return false
	}
	return emsaPSSVerify(digest, m.FillBytes(make([]byte, emLen)), emBits, h, mgf)
}

// rsaSignRaw computes m^d mod n with blinding and checks the result.
func rsaSignRaw(key *rsa.PrivateKey, m *big.Int) (*big.Int, error) {
	n := key.N
	if m.Cmp(n) >= 0 {
		return nil, errors.New("rsa: message representative out of range")
	}
	e := big.NewInt(int64(key.E))
	var r, rInv *big.Int
	for {
		var err error
		r, err = rand.Int(rand.Reader, n)
		if err != nil {
			return nil, fmt.Errorf("rsa blinding: %w", err)
		}
		if r.Sign() == 0 {
			continue
		}
		if rInv = new(big.Int).ModInverse(r, n); rInv != nil {
			break
		}
	}
	c := new(big.Int).Exp(r, e, n)
	c.Mul(c, m).Mod(c, n)
	s := new(big.Int).Exp(c, key.D, n)
	s.Mul(s, rInv).Mod(s, n)
	if new(big.Int).Exp(s, e, n).Cmp(m) != 0 {
		return nil, errors.New("rsa: signature check failed")
	}
	return s, nil
}
