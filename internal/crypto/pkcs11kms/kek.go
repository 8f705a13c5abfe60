//go:build cgo

package pkcs11kms

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

const (
	ivSize  = 12
	tagBits = 128
	version = 1 // first byte of every ciphertext
)

// KEK is an AES-256 key inside a PKCS#11 token, used as an AEAD with
// CKM_AES_GCM: Encrypt returns version || IV || ciphertext || tag. The
// plaintext and the key never meet outside the token except for the
// plaintext itself. It is safe for concurrent use: each operation takes a
// session from a pool, and a token error (a closed session, a logged-out or
// re-inserted token) makes the KEK reconnect once and retry.
type KEK struct {
	uri  URI
	pin  string
	opts Options
	mod  *module

	mu        sync.Mutex // guards the fields below and reconnects
	slot      uint
	key       pkcs11.ObjectHandle
	gen       uint64
	pool      []session
	generated bool
	closed    bool
}

type session struct {
	h   pkcs11.SessionHandle
	gen uint64
}

// module is one loaded and initialised PKCS#11 library. C_Initialize is
// per process, so KEKs of one library share it; the last Close finalises.
type module struct {
	path string
	ctx  *pkcs11.Ctx
	refs int
}

var (
	modulesMu sync.Mutex
	modules   = map[string]*module{}
)

func loadModule(path string) (*module, error) {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m := modules[path]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("pkcs11: cannot load the PKCS#11 library %s (dlopen failed: is it installed?)", path)
	}
	if err := ctx.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("pkcs11: initialise %s: %w", path, err)
	}
	m := &module{path: path, ctx: ctx, refs: 1}
	modules[path] = m
	return m, nil
}

func (m *module) release() {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(modules, m.path)
	_ = m.ctx.Finalize()
	m.ctx.Destroy()
}

// Open loads the URI's library, finds its token, logs in and finds (or,
// with opts.Generate, creates) the key. Its errors name the token and key,
// never the PIN; ErrTokenNotFound, ErrWrongPIN and ErrKeyNotFound are
// distinguishable with errors.Is. A failed Open leaves the token unchanged.
func Open(ctx context.Context, u URI, opts Options) (*KEK, error) {
	if opts.MaxIdleSessions <= 0 {
		opts.MaxIdleSessions = 8
	}
	pin, err := u.PIN()
	if err != nil {
		return nil, err
	}
	mod, err := loadModule(u.ModulePath)
	if err != nil {
		return nil, err
	}
	k := &KEK{uri: u, pin: pin, opts: opts, mod: mod}
	k.mu.Lock()
	err = k.connect()
	k.mu.Unlock()
	if err != nil {
		mod.release()
		return nil, err
	}
	return k, nil
}

// String names the key without its PIN.
func (k *KEK) String() string { return k.uri.String() }

// Generated reports whether Open created the key.
func (k *KEK) Generated() bool { return k.generated }

func (k *KEK) errorf(format string, args ...any) error {
	return fmt.Errorf("pkcs11: %s: "+format, append([]any{k.uri.String()}, args...)...)
}

// connect (k.mu held) finds the slot, logs in and finds the key; every
// pooled session of an earlier connection is dropped.
func (k *KEK) connect() error {
	p := k.mod.ctx
	for _, s := range k.pool {
		_ = p.CloseSession(s.h)
	}
	k.pool = nil
	k.gen++
	slots, err := p.GetSlotList(true)
	if err != nil {
		return k.errorf("list slots: %w", err)
	}
	found := false
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err == nil && strings.TrimRight(ti.Label, " \x00") == k.uri.Token {
			k.slot, found = s, true
			break
		}
	}
	if !found {
		return k.errorf("%w", ErrTokenNotFound)
	}
	sh, err := p.OpenSession(k.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return k.errorf("open session: %w", err)
	}
	if err := p.Login(sh, pkcs11.CKU_USER, k.pin); err != nil && !isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		_ = p.CloseSession(sh)
		if isCode(err, pkcs11.CKR_PIN_INCORRECT) || isCode(err, pkcs11.CKR_PIN_INVALID) || isCode(err, pkcs11.CKR_PIN_LEN_RANGE) || isCode(err, pkcs11.CKR_PIN_LOCKED) {
			return k.errorf("%w (%v)", ErrWrongPIN, err)
		}
		return k.errorf("login: %w", err)
	}
	key, err := k.findKey(sh)
	if errors.Is(err, ErrKeyNotFound) && k.opts.Generate {
		key, err = k.generate(sh)
		if err == nil {
			k.generated = true
		}
	}
	if err != nil {
		_ = p.CloseSession(sh)
		return err
	}
	k.key = key
	k.pool = append(k.pool, session{h: sh, gen: k.gen})
	return nil
}

// rootKeyRules are what findKey demands of the key it finds: a 256-bit
// AES key the token never reveals.
var rootKeyRules = []struct {
	attr    uint
	ok      func(value []byte) bool
	refusal string
}{
	{pkcs11.CKA_KEY_TYPE, func(v []byte) bool { return ulong(v) == pkcs11.CKK_AES }, "the key is not an AES key"},
	{pkcs11.CKA_VALUE_LEN, func(v []byte) bool { return ulong(v) == 32 }, "the key is not a 256-bit AES key"},
	{pkcs11.CKA_SENSITIVE, boolean, "the key is not CKA_SENSITIVE; refusing a root key the token would reveal"},
	{pkcs11.CKA_EXTRACTABLE, func(v []byte) bool { return !boolean(v) }, "the key is CKA_EXTRACTABLE; refusing a root key that can leave the token"},
}

func (k *KEK) findKey(sh pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
	p := k.mod.ctx
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, k.uri.Object),
	}
	if err := p.FindObjectsInit(sh, tmpl); err != nil {
		return 0, k.errorf("find key: %w", err)
	}
	objs, _, err := p.FindObjects(sh, 2)
	_ = p.FindObjectsFinal(sh)
	if err != nil {
		return 0, k.errorf("find key: %w", err)
	}
	switch len(objs) {
	case 0:
		return 0, k.errorf("%w", ErrKeyNotFound)
	case 2:
		return 0, k.errorf("two secret keys carry this label; give the key a unique label")
	}
	tmpl = make([]*pkcs11.Attribute, len(rootKeyRules))
	for i, r := range rootKeyRules {
		tmpl[i] = pkcs11.NewAttribute(r.attr, nil)
	}
	attrs, err := p.GetAttributeValue(sh, objs[0], tmpl)
	if err != nil {
		return 0, k.errorf("read key attributes: %w", err)
	}
	for _, a := range attrs {
		for _, r := range rootKeyRules {
			if a.Type == r.attr && !r.ok(a.Value) {
				return 0, k.errorf("%s", r.refusal)
			}
		}
	}
	return objs[0], nil
}

// generate creates the AES-256 key inside the token: a token object,
// private, sensitive and never extractable, usable only to encrypt and
// decrypt.
func (k *KEK) generate(sh pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	h, err := k.mod.ctx.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, k.uri.Object),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
	})
	if err != nil {
		return 0, k.errorf("generate key: %w", err)
	}
	return h, nil
}

func ulong(b []byte) uint {
	var v uint
	for i := len(b) - 1; i >= 0; i-- { // PKCS#11 CK_ULONG in host (little-endian) order
		v = v<<8 | uint(b[i])
	}
	return v
}

func boolean(b []byte) bool { return len(b) > 0 && b[0] != 0 }

func isCode(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// tokenError reports whether err means the session or the token went away,
// so that reconnecting may help.
func tokenError(err error) bool {
	for _, c := range []uint{
		pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID,
		pkcs11.CKR_SLOT_ID_INVALID, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
	} {
		if isCode(err, c) {
			return true
		}
	}
	return false
}

func (k *KEK) get() (session, pkcs11.ObjectHandle, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := len(k.pool); n > 0 {
		s := k.pool[n-1]
		k.pool = k.pool[:n-1]
		return s, k.key, nil
	}
	sh, err := k.mod.ctx.OpenSession(k.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return session{}, 0, err
	}
	return session{h: sh, gen: k.gen}, k.key, nil
}

func (k *KEK) put(s session, broken bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if broken || s.gen != k.gen || len(k.pool) >= k.opts.MaxIdleSessions {
		_ = k.mod.ctx.CloseSession(s.h)
		return
	}
	k.pool = append(k.pool, s)
}

// reconnect re-opens the token after a token error seen by a session of
// generation gen (once per generation: concurrent failures reconnect once).
func (k *KEK) reconnect(gen uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if gen != k.gen {
		return nil // another caller already reconnected
	}
	return k.connect()
}

// do runs op on a pooled session, reconnecting and retrying once after a
// token error.
func (k *KEK) do(op func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, key pkcs11.ObjectHandle) ([]byte, error)) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		s, key, err := k.get()
		var out []byte
		if err == nil {
			out, err = op(k.mod.ctx, s.h, key)
			k.put(s, err != nil && tokenError(err))
		}
		if err == nil || !tokenError(err) || attempt > 0 {
			return out, err
		}
		if rerr := k.reconnect(s.gen); rerr != nil {
			return nil, rerr
		}
	}
}

// Encrypt encrypts plaintext with AES-256-GCM inside the token, binding
// associatedData.
func (k *KEK) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	out, err := k.do(func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, key pkcs11.ObjectHandle) ([]byte, error) {
		iv := make([]byte, ivSize)
		if _, err := rand.Read(iv); err != nil {
			return nil, err
		}
		params := pkcs11.NewGCMParams(iv, associatedData, tagBits)
		defer params.Free()
		if err := p.EncryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, key); err != nil {
			return nil, err
		}
		ct, err := p.Encrypt(sh, plaintext)
		if err != nil {
			return nil, err
		}
		// Some tokens choose the IV themselves: record the one used.
		used := params.IV()
		if len(used) != ivSize {
			return nil, errors.New("token returned an IV of unexpected size")
		}
		out := make([]byte, 0, 1+ivSize+len(ct))
		out = append(out, version)
		out = append(out, used...)
		return append(out, ct...), nil
	})
	if err != nil {
		return nil, k.errorf("encrypt: %w", err)
	}
	return out, nil
}

// Decrypt opens a ciphertext of Encrypt with the same associated data. A
// changed ciphertext or associated data is ErrOpen.
func (k *KEK) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	if len(ciphertext) < 1+ivSize+tagBits/8 || ciphertext[0] != version {
		return nil, ErrOpen
	}
	iv, ct := ciphertext[1:1+ivSize], ciphertext[1+ivSize:]
	out, err := k.do(func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, key pkcs11.ObjectHandle) ([]byte, error) {
		params := pkcs11.NewGCMParams(iv, associatedData, tagBits)
		defer params.Free()
		if err := p.DecryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, key); err != nil {
			return nil, err
		}
		pt, err := p.Decrypt(sh, ct)
		if err != nil && !tokenError(err) {
			// Tokens differ in how they report a wrong tag
			// (SoftHSM2: CKR_GENERAL_ERROR); any failure of C_Decrypt
			// itself that is not the token going away is a ciphertext
			// that does not open.
			return nil, ErrOpen
		}
		return pt, err
	})
	if err != nil {
		if errors.Is(err, ErrOpen) {
			return nil, ErrOpen
		}
		return nil, k.errorf("decrypt: %w", err)
	}
	return out, nil
}

// Close returns the sessions and releases the library (finalised when no
// other KEK uses it).
func (k *KEK) Close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	for _, s := range k.pool {
		_ = k.mod.ctx.CloseSession(s.h)
	}
	k.pool = nil
	k.gen++
	k.mu.Unlock()
	k.mod.release()
	return nil
}
