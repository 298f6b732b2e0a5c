"""Verify a Feria entitlement receipt offline, with nothing of Feria's but its public keys.

    python3 receipt_verify.py JWKS_FILE RECEIPT [PLATFORM_ID]

JWKS_FILE is the platform's key set as `GET /.well-known/jwks.json?platform=...` served it
(fetched once, kept anywhere); RECEIPT the compact JWS. Prints the verified claims as JSON
and exits 0; exits 1 with the reason when the signature, the key, the expiry or the issuer
does not hold. Needs PyJWT with cryptography (scripts/receipt-verify-requirements.txt).
See docs/ONCHAIN.md, "Receipts".
"""

import json
import sys

import jwt


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        jwks = json.load(f)
    token = sys.argv[2].strip()
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "EdDSA":
            raise jwt.InvalidTokenError(f"unexpected alg {header.get('alg')!r}")
        matching = [k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")]
        if not matching:
            raise jwt.InvalidTokenError(f"no key {header.get('kid')!r} in the key set")
        key = jwt.PyJWK(matching[0], algorithm="EdDSA")
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["EdDSA"],
            options={"require": ["iss", "sub", "iat", "exp"]},
        )
        if len(sys.argv) == 4 and not claims["iss"].startswith(f"feria:{sys.argv[3]}:"):
            raise jwt.InvalidTokenError(f"issued by {claims['iss']!r}")
    except jwt.PyJWTError as error:
        print(f"invalid receipt: {error}", file=sys.stderr)
        return 1
    print(json.dumps(claims, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
