package vault

import (
	"crypto"
	"encoding/binary"
	"sync"

	"github.com/credvault/credvault/internal/keymat"
)

// maxSigners bounds the parsed private keys a Service keeps (see signers).
const maxSigners = 1024

// signers keeps the parsed private keys of the security objects that sign,
// so that a signature does not open the sealed key and parse its PKCS #8
// encoding every time (for EC P-256 the parse, which recomputes the public
// point, costs more than the signature; for RSA it validates the key).
//
// An entry is keyed by the sealed key material itself together with the
// associated data it was opened under (account, kid, version): it answers
// only for a stored row whose ciphertext, bound to that object and
// version, is byte for byte the one that opened. A rotated, rewrapped or
// replaced key is a new ciphertext and so a miss; a deleted one is never
// looked up again and ages out. The plaintext PKCS #8 bytes are cleared
// after parsing; what stays in memory is the parsed key, as in any process
// that signs, for at most maxSigners keys (an arbitrary one is dropped to
// make room).
type signers struct {
	mu sync.Mutex
	m  map[string]crypto.Signer
}

// signer returns the parsed private key sealed in ct under ad, opening and
// parsing it on a miss. open returns the plaintext PKCS #8 key, which
// signer clears.
func (c *signers) signer(ct, ad []byte, open func() ([]byte, error)) (crypto.Signer, error) {
	key := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(ad)+len(ct)), uint64(len(ad)))
	key = append(append(key, ad...), ct...)
	c.mu.Lock()
	k, ok := c.m[string(key)]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	secret, err := open()
	if err != nil {
		return nil, err
	}
	k, err = keymat.ParseSigner(secret)
	clear(secret)
	if err != nil {
		return nil, keymatErr(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]crypto.Signer)
	}
	if len(c.m) >= maxSigners {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[string(key)] = k
	return k, nil
}
