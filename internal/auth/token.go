package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/berth/berth/internal/meta"
)

// Claims are a token's claims: the registered ones and distribution's
// access list.
type Claims struct {
	jwt.RegisteredClaims
	Access []Access `json:"access"`
}

// DefaultTokenTTL is how long a token lives: the bound on a revocation
// (docs/design/auth.md).
const DefaultTokenTTL = 5 * time.Minute

// clockSkew is the leeway on nbf and exp between replicas' clocks.
const clockSkew = time.Minute

// keyAlgorithm is the algorithm of berth's own keys.
const keyAlgorithm = "EdDSA"

// keyReloadInterval bounds how often an unknown kid reloads the keys.
const keyReloadInterval = time.Second

// keyRefreshInterval is how often a replica rereads the keys even when it
// sees no unknown kid: a key rotated in by another replica or by the CLI
// signs here, and a retired key stops verifying here, within it.
const keyRefreshInterval = 30 * time.Second

// keyring holds berth's signing keys, loaded from the database.
type keyring struct {
	store meta.Store
	now   func() time.Time

	mu       sync.RWMutex
	signing  *ringKey
	verify   map[string]ed25519.PublicKey
	loadedAt time.Time
	loadMu   sync.Mutex // one reload at a time
}

type ringKey struct {
	id  string
	key ed25519.PrivateKey
}

// ensure makes sure a key that signs exists, creating one if none does:
// its id follows from the keys already stored, so replicas starting at
// once insert the same id and all but one get meta.ErrExists.
func (k *keyring) ensure(ctx context.Context) error {
	err := k.store.Update(ctx, func(tx meta.Tx) error {
		keys, err := tx.SigningKeys(ctx)
		if err != nil {
			return err
		}
		for _, key := range keys {
			if key.RetiredAt == nil {
				return nil
			}
		}
		return tx.PutSigningKey(ctx, newKey(len(keys), k.now()))
	})
	if err != nil && !errors.Is(err, meta.ErrExists) {
		return fmt.Errorf("creating the token signing key: %w", err)
	}
	return k.load(ctx)
}

// rotate inserts a new key that signs from now on; with retireOlder, it
// retires every older key instead.
func (k *keyring) rotate(ctx context.Context, retireOlder bool) (id string, retired []string, err error) {
	err = k.store.Update(ctx, func(tx meta.Tx) error {
		id, retired = "", nil
		keys, err := tx.SigningKeys(ctx)
		if err != nil {
			return err
		}
		if retireOlder {
			if len(keys) == 0 {
				return fmt.Errorf("no signing key yet; start berth serve once: %w", ErrInvalid)
			}
			id = keys[0].ID
			for _, key := range keys[1:] {
				if key.RetiredAt == nil {
					if err := tx.RetireSigningKey(ctx, key.ID, k.now()); err != nil {
						return err
					}
					retired = append(retired, key.ID)
				}
			}
			return nil
		}
		key := newKey(len(keys), k.now())
		id = key.ID
		return tx.PutSigningKey(ctx, key)
	})
	if errors.Is(err, meta.ErrExists) {
		err = fmt.Errorf("another rotation ran at the same time; run it again: %w", err)
	}
	if err != nil {
		return "", nil, err
	}
	return id, retired, k.load(ctx)
}

func newKey(n int, now time.Time) meta.SigningKey {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	return meta.SigningKey{ID: fmt.Sprintf("berth-%d", n+1), Algorithm: keyAlgorithm, PrivateKey: der, CreatedAt: now}
}

// load reads every key that is not retired.
func (k *keyring) load(ctx context.Context) error {
	var keys []meta.SigningKey
	if err := k.store.View(ctx, func(tx meta.Tx) error {
		var err error
		keys, err = tx.SigningKeys(ctx)
		return err
	}); err != nil {
		return fmt.Errorf("loading the token signing keys: %w", err)
	}
	var signing *ringKey
	verify := map[string]ed25519.PublicKey{}
	for _, key := range keys { // newest first
		if key.RetiredAt != nil || key.Algorithm != keyAlgorithm {
			continue
		}
		parsed, err := x509.ParsePKCS8PrivateKey(key.PrivateKey)
		priv, ok := parsed.(ed25519.PrivateKey)
		if err != nil || !ok {
			return fmt.Errorf("signing key %s: not an Ed25519 PKCS #8 key", key.ID)
		}
		if signing == nil {
			signing = &ringKey{id: key.ID, key: priv}
		}
		verify[key.ID] = priv.Public().(ed25519.PublicKey)
	}
	k.mu.Lock()
	k.signing, k.verify, k.loadedAt = signing, verify, k.now()
	k.mu.Unlock()
	return nil
}

// refresh rereads the keys when they are older than keyRefreshInterval;
// one caller rereads while the others go on with the keys they have. A
// failed reread keeps the keys loaded (the next call tries again): the
// database being unreachable must not also make every token unverifiable.
func (k *keyring) refresh(ctx context.Context) {
	k.mu.RLock()
	stale := k.now().Sub(k.loadedAt) >= keyRefreshInterval
	k.mu.RUnlock()
	if !stale || !k.loadMu.TryLock() {
		return
	}
	defer k.loadMu.Unlock()
	_ = k.load(ctx)
}

// publicKey returns the key of kid, reloading the keys (at most once per
// keyReloadInterval) when it is unknown: another replica may have rotated.
func (k *keyring) publicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	k.refresh(ctx)
	k.mu.RLock()
	pub, ok := k.verify[kid]
	loadedAt := k.loadedAt
	k.mu.RUnlock()
	if ok {
		return pub, nil
	}
	k.loadMu.Lock()
	defer k.loadMu.Unlock()
	k.mu.RLock()
	pub, ok = k.verify[kid]
	reloaded := k.loadedAt != loadedAt
	recent := k.now().Sub(k.loadedAt) < keyReloadInterval
	k.mu.RUnlock()
	if ok {
		return pub, nil
	}
	if !reloaded && !recent {
		if err := k.load(ctx); err != nil {
			return nil, err
		}
		k.mu.RLock()
		pub, ok = k.verify[kid]
		k.mu.RUnlock()
		if ok {
			return pub, nil
		}
	}
	return nil, fmt.Errorf("unknown signing key %q: %w", kid, ErrInvalidToken)
}

func (k *keyring) signer() (*ringKey, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.signing == nil {
		return nil, errors.New("no token signing key is loaded")
	}
	return k.signing, nil
}

// sign signs claims with the newest key.
func (k *keyring) sign(ctx context.Context, c Claims) (string, error) {
	k.refresh(ctx)
	key, err := k.signer()
	if err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = key.id
	s, err := t.SignedString(key.key)
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return s, nil
}

// ExternalIssuer is a token service berth trusts instead of its own
// (distribution's auth.token).
type ExternalIssuer struct {
	Realm   string
	Issuer  string
	Service string
	// Keys are the trusted public keys, by id (a certificate's or key's
	// JWK thumbprint, RFC 7638).
	Keys map[string]crypto.PublicKey
}

// LoadIssuerBundle reads a PEM bundle of certificates and public keys.
func LoadIssuerBundle(path string) (map[string]crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the token issuer's key bundle: %w", err)
	}
	keys := map[string]crypto.PublicKey{}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var pub crypto.PublicKey
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: a certificate: %w", path, err)
			}
			pub = cert.PublicKey
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: a public key: %w", path, err)
			}
		default:
			return nil, fmt.Errorf("%s: a PEM block of type %q; want CERTIFICATE or PUBLIC KEY", path, block.Type)
		}
		id, err := thumbprint(pub)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		keys[id] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no certificate or public key", path)
	}
	return keys, nil
}

// thumbprint is the RFC 7638 JWK thumbprint of a public key, base64url.
func thumbprint(pub crypto.PublicKey) (string, error) {
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	var members string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		members = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, b64(big.NewInt(int64(k.E)).Bytes()), b64(k.N.Bytes()))
	case *ecdsa.PublicKey:
		ecdh, err := k.ECDH()
		if err != nil {
			return "", fmt.Errorf("an ECDSA key: %w", err)
		}
		raw := ecdh.Bytes()[1:] // uncompressed point without its 0x04 prefix
		size := len(raw) / 2
		members = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, k.Curve.Params().Name, b64(raw[:size]), b64(raw[size:]))
	case ed25519.PublicKey:
		members = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":%q}`, b64(k))
	default:
		return "", fmt.Errorf("unsupported public key type %T; want RSA, ECDSA or Ed25519", pub)
	}
	sum := sha256.Sum256([]byte(members))
	return b64(sum[:]), nil
}

// verifier checks tokens: berth's own, or an external issuer's.
type verifier struct {
	ring     *keyring
	external *ExternalIssuer
	issuer   string
	service  string
	now      func() time.Time
}

var ownMethods = []string{keyAlgorithm}
var externalMethods = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA"}

// verify parses and checks raw. The key decides the algorithm: berth's own
// keys only verify EdDSA, and an external key only the family of its type
// (the jwt library refuses a method whose key type does not match).
func (v *verifier) verify(ctx context.Context, raw string) (Claims, error) {
	var c Claims
	methods, issuer, service := ownMethods, v.issuer, v.service
	if v.external != nil {
		methods, issuer, service = externalMethods, v.external.Issuer, v.external.Service
	}
	_, err := jwt.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if v.external == nil {
			return v.ring.publicKey(ctx, kid)
		}
		if k, ok := v.external.Keys[kid]; ok {
			return k, nil
		}
		set := jwt.VerificationKeySet{}
		for _, k := range v.external.Keys {
			set.Keys = append(set.Keys, k)
		}
		return set, nil
	},
		jwt.WithValidMethods(methods),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(service),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(clockSkew),
		jwt.WithTimeFunc(v.now),
	)
	if err != nil {
		if errors.Is(err, ErrInvalidToken) {
			return Claims{}, err
		}
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalidToken, tokenErrorText(err))
	}
	return c, nil
}

// tokenErrorText says why a token failed, without echoing the token.
func tokenErrorText(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token from another issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token for another service"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token signature does not verify"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	}
	return "token does not verify"
}

// randomID is a token's jti.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
