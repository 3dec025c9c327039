#!/usr/bin/env python3
"""Generate JWT test fixtures for authgate with independent (non-Swift) libraries.

Output: Tests/GatewayTests/Fixtures/jwt_fixtures.json (overwritten on every run).

What it contains
----------------
* ``keys``: one verification key per supported algorithm (HS256/384/512 secrets,
  RS256/RS384/RS512/PS256/PS384/PS512/ES256/ES384/ES512/EdDSA public keys as SPKI
  PEM), plus a second RS256 key of 4096 bits (``rs256-4096``).
* ``weak_keys``: keys the gateway must refuse at load time (a 1024-bit RSA public
  key, ``rs-1024``); never in ``keys``.
* ``private_keys``: the PKCS#8 PEM of ``rs256-1`` only (for minting tests).
* ``jwks``: a JWK Set with public forms of rs256-1 / es256-1 / ed-1 under other
  kids, an RSA ``"use":"enc"`` key, an unsupported ``kty``, then an EC P-384 key
  without ``alg`` (``es384-jwk``), an EC key with ``"key_ops":["encrypt"]``
  (``ops-enc``, to be skipped) and an ``oct`` key without ``alg`` (``oct-jwk``).
  Usable keys, in order: rs256-jwk, es256-jwk, ed-jwk, es384-jwk, oct-jwk;
  skipped: enc-1, weird, ops-enc.
* ``cases``: compact JWS tokens with the expected outcome. Valid tokens are
  signed with PyJWT and joserfc; malicious/malformed ones are built by hand
  ("handmade") with hmac/hashlib/cryptography primitives. Every invalid case
  carries a ``reason`` code, every valid case the expected ``sub``.
* ``rfc7515``: the RFC 7515 Appendix A.1 (HS256), A.2 (RS256), A.3 (ES256) and
  A.4 (ES512) examples; ``rfc8037``: Appendix A.4 (Ed25519, key of A.1/A.2);
  ``rfc7520``: sections 4.1 (RS256), 4.2 (PS384), 4.3 (ES512), 4.4 (HS256).
  Each has ``alg``, ``compact``, ``jwk`` (public), ``verify_at``, ``has_exp`` and
  ``payload_is_json``; ``kid`` when the protected header names one. Where
  ``has_exp`` is false (no ``exp``; A.4, RFC 8037, RFC 7520 payloads are not even
  JSON), ``verify_at`` is 0 and only the signature is meant to be checked.

All time claims are relative to the fixed instant ``NOW = 1700000000``; the Swift
tests must verify at that instant with 30 s clock skew. Keys and secrets are
freshly generated on every run, so re-running changes keys/signatures but not
the structure or the set of cases.

Before writing, the script checks that
* every "valid" case verifies at NOW with PyJWT *and* joserfc (iss/aud/exp/nbf/
  iat checked, 30 s leeway);
* every "invalid" case is rejected, with exactly its ``reason``, by a small
  reference verifier in this file (signature checks via PyJWT primitives);
* every RFC example verifies with its printed public JWK under jwcrypto *and*
  joserfc (and PyJWT), yields the RFC's payload, and fails with one bit of its
  signature flipped.

Rerun (from the repository root):

    pip install pyjwt joserfc jwcrypto cryptography
    python3 scripts/gen_jwt_fixtures.py
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import warnings
from importlib.metadata import version as pkg_version

import jwt  # PyJWT
import jwt.api_jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from joserfc import jwk as jf_jwk
from joserfc import jws as jf_jws
from joserfc import jwt as jf_jwt
from jwcrypto import jwk as jc_jwk
from jwcrypto import jws as jc_jws

warnings.filterwarnings("ignore")  # joserfc SecurityWarning for EdDSA, PyJWT key-length warnings

NOW = 1700000000
ISSUER = "https://issuer.test"
AUDIENCE = "orders"
SKEW = 30

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(REPO_ROOT, "Tests", "GatewayTests", "Fixtures", "jwt_fixtures.json")

ALL_ALGS = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "ES512", "EdDSA"]


# --------------------------------------------------------------------------- helpers

EC_ALG_BY_CRV = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode_strict(seg: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", seg) or len(seg) % 4 == 1:
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))
    if b64u(raw) != seg:  # non-canonical trailing bits
        raise ValueError("non-canonical base64url")
    return raw


def cjson(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def spki_pem(public_key) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def pkcs8_pem(private_key) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def raw_sign(alg: str, private_key, signing_input: bytes) -> bytes:
    """Sign with cryptography/hmac primitives directly (for handmade tokens)."""
    if alg.startswith("HS"):
        h = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        return hmac.new(private_key, signing_input, h).digest()
    if alg.startswith("RS"):
        h = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}[alg]
        return private_key.sign(signing_input, padding.PKCS1v15(), h)
    raise ValueError(alg)


def handmade(header, payload, alg: str, key) -> str:
    h = header if isinstance(header, (bytes, str)) else cjson(header)
    p = payload if isinstance(payload, (bytes, str)) else cjson(payload)
    h = h.encode() if isinstance(h, str) else h
    p = p.encode() if isinstance(p, str) else p
    si = (b64u(h) + "." + b64u(p)).encode("ascii")
    return si.decode() + "." + b64u(raw_sign(alg, key, si))


@contextlib.contextmanager
def pyjwt_frozen_time(ts: int):
    """PyJWT reads datetime.now() in jwt.api_jwt; freeze it at `ts`."""
    real = jwt.api_jwt.datetime

    class Frozen(real):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz=None):
            return real.fromtimestamp(ts, tz=tz)

    jwt.api_jwt.datetime = Frozen
    try:
        yield
    finally:
        jwt.api_jwt.datetime = real


# --------------------------------------------------------------------------- keys

def gen_keys():
    k = {}
    k["hs256-1"] = ("HS256", secrets.token_bytes(32))
    k["hs384-1"] = ("HS384", secrets.token_bytes(48))
    k["hs512-1"] = ("HS512", secrets.token_bytes(64))
    k["rs256-1"] = ("RS256", rsa.generate_private_key(65537, 2048))
    k["rs384-1"] = ("RS384", rsa.generate_private_key(65537, 3072))
    k["rs512-1"] = ("RS512", rsa.generate_private_key(65537, 2048))
    k["ps256-1"] = ("PS256", rsa.generate_private_key(65537, 2048))
    k["es256-1"] = ("ES256", ec.generate_private_key(ec.SECP256R1()))
    k["es384-1"] = ("ES384", ec.generate_private_key(ec.SECP384R1()))
    k["ed-1"] = ("EdDSA", ed25519.Ed25519PrivateKey.generate())
    # added after the first set; appended so the order of the earlier keys is unchanged
    k["ps384-1"] = ("PS384", rsa.generate_private_key(65537, 2048))
    k["ps512-1"] = ("PS512", rsa.generate_private_key(65537, 2048))
    k["es512-1"] = ("ES512", ec.generate_private_key(ec.SECP521R1()))
    k["rs256-4096"] = ("RS256", rsa.generate_private_key(65537, 4096))
    return k


def joserfc_key(alg: str, priv):
    if alg.startswith("HS"):
        return jf_jwk.OctKey.import_key(priv)
    pem = pkcs8_pem(priv)
    if alg[:2] in ("RS", "PS"):
        return jf_jwk.RSAKey.import_key(pem)
    if alg.startswith("ES"):
        return jf_jwk.ECKey.import_key(pem)
    return jf_jwk.OKPKey.import_key(pem)


def public_jwk(priv, **extra) -> dict:
    d = jf_jwk.import_key(pkcs8_pem(priv)).as_dict(private=False)
    for k in ("kid", "alg", "use", "key_ops"):
        d.pop(k, None)
    d.update(extra)
    return d


# --------------------------------------------------------------------------- verification

def pyjwt_verify_valid(token: str, key, alg: str) -> dict:
    with pyjwt_frozen_time(NOW):
        return jwt.decode(
            token, key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER, leeway=SKEW,
            options={"require": ["exp", "iss", "aud", "sub"], "verify_signature": True},
        )


def joserfc_verify_valid(token: str, key, alg: str) -> dict:
    tok = jf_jwt.decode(token, key, algorithms=[alg])
    reg = jf_jwt.JWTClaimsRegistry(
        now=NOW, leeway=SKEW,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True},
        sub={"essential": True},
    )
    reg.validate(tok.claims)
    return tok.claims


class Ref:
    """Reference verifier mirroring the intended gateway semantics (used only to
    sanity-check that each invalid fixture fails for exactly its stated reason)."""

    SUPPORTED = set(ALL_ALGS)

    def __init__(self, keys: dict, jwks: dict):
        self.entries = []  # (kid, alg-or-None, pyjwt-usable key, family)
        for kid, (alg, priv) in keys.items():
            self.entries.append((kid, alg, priv if alg.startswith("HS") else priv.public_key()))
        for j in jwks["keys"]:
            if j.get("use", "sig") != "sig" or j["kty"] not in ("RSA", "EC", "OKP", "oct"):
                continue
            if "key_ops" in j and "verify" not in j["key_ops"]:
                continue
            default = {"RSA": "RS256", "OKP": "EdDSA", "oct": "HS256"}.get(j["kty"]) or EC_ALG_BY_CRV[j["crv"]]
            pk = jwt.PyJWK(j, algorithm=j.get("alg") or default)
            self.entries.append((j["kid"], j.get("alg"), pk.key))

    @staticmethod
    def _alg_fits(key_alg, key, alg):
        if key_alg is not None:
            return key_alg == alg
        if isinstance(key, rsa.RSAPublicKey):
            return alg[:2] in ("RS", "PS")
        if isinstance(key, ec.EllipticCurvePublicKey):
            return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(key.curve.name) == alg
        if isinstance(key, bytes):  # oct JWK without alg: every HS alg its length allows
            return alg in HMAC_MIN_BYTES and len(key) >= HMAC_MIN_BYTES[alg]
        if isinstance(key, ed25519.Ed25519PublicKey):
            return alg == "EdDSA"
        return False

    def verify(self, token: str):
        parts = token.split(".")
        if len(parts) != 3:
            return "malformed"
        try:
            hb, pb, sig = (b64u_decode_strict(p) for p in parts)
            if not hb or not pb:
                return "malformed"
            header = json.loads(hb)
        except ValueError:
            return "malformed"
        if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
            return "malformed"
        alg = header["alg"]
        if alg not in self.SUPPORTED:
            return "unsupported_algorithm"
        if "crit" in header:
            return "critical_header"
        if "kid" in header and not isinstance(header["kid"], str):
            return "invalid_claim"
        kid = header.get("kid")
        if kid is not None:
            cands = [e for e in self.entries if e[0] == kid]
            if not cands:
                return "unknown_key"
            if not self._alg_fits(cands[0][1], cands[0][2], alg):
                return "algorithm_mismatch"
        else:
            cands = [e for e in self.entries if self._alg_fits(e[1], e[2], alg)]
            if not cands:
                return "unknown_key"
        algo = jwt.algorithms.get_default_algorithms()[alg]
        si = (parts[0] + "." + parts[1]).encode()
        if not any(algo.verify(si, c[2], sig) for c in cands):
            return "bad_signature"
        try:
            claims = json.loads(pb)
        except ValueError:
            return "malformed"
        if not isinstance(claims, dict):
            return "malformed"
        num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
        for c in ("exp", "nbf", "iat"):
            if c in claims and not num(claims[c]):
                return "invalid_claim"
        if "exp" not in claims:
            return "missing_exp"
        if claims["exp"] <= NOW - SKEW:
            return "expired"
        if "nbf" in claims and claims["nbf"] > NOW + SKEW:
            return "not_yet_valid"
        if "iat" in claims and claims["iat"] > NOW + SKEW:
            return "issued_in_future"
        if claims.get("iss") != ISSUER:
            return "wrong_issuer"
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if AUDIENCE not in auds:
            return "wrong_audience"
        return "valid"


# --------------------------------------------------------------------------- RFC 7515

RFC7515_A1 = {
    "alg": "HS256",
    "compact": (
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        "."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        "."
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    ),
    "jwk": {
        "kty": "oct",
        "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
    },
    "verify_at": 1300819000,
    "has_exp": True,
    "payload_is_json": True,
}

RFC7515_A2 = {
    "alg": "RS256",
    "compact": (
        "eyJhbGciOiJSUzI1NiJ9"
        "."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        "."
        "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7"
        "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4"
        "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
        "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv"
        "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB"
        "p0igcN_IoypGlUPQGe77Rw"
    ),
    "jwk": {
        "kty": "RSA",
        "n": (
            "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx"
            "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"
            "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH"
            "SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV"
            "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8"
            "NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
        ),
        "e": "AQAB",
    },
    "verify_at": 1300819000,
    "has_exp": True,
    "payload_is_json": True,
}


# A.3: ES256 over the A.1 payload (key from A.3.1; public part only).
RFC7515_A3 = {
    "alg": "ES256",
    "compact": (
        "eyJhbGciOiJFUzI1NiJ9"
        "."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        "."
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
    ),
    "jwk": {
        "kty": "EC",
        "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    },
    "verify_at": 1300819000,
    "has_exp": True,
    "payload_is_json": True,
}

# A.4: ES512 over the bytes "Payload" (not JSON, no exp).
RFC7515_A4 = {
    "alg": "ES512",
    "compact": (
        "eyJhbGciOiJFUzUxMiJ9"
        "."
        "UGF5bG9hZA"
        "."
        "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZq"
        "wqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8Kp"
        "EHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn"
    ),
    "jwk": {
        "kty": "EC",
        "crv": "P-521",
        "x": "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
        "y": "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2",
    },
    "verify_at": 0,
    "has_exp": False,
    "payload_is_json": False,
}

# RFC 8037 A.4: EdDSA (Ed25519) over "Example of Ed25519 signing", public key of A.2.
RFC8037_A4 = {
    "alg": "EdDSA",
    "compact": (
        "eyJhbGciOiJFZERTQSJ9"
        "."
        "RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
        "."
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    ),
    "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    "verify_at": 0,
    "has_exp": False,
    "payload_is_json": False,
}

# RFC 7520 ("JOSE Cookbook") section 4: one plaintext (section 4, not JSON), keys of 3.1/3.3/3.5.
RFC7520_PAYLOAD = (
    "It\u2019s a dangerous business, Frodo, going out your door. You step onto the road, and if you "
    "don't keep your feet, there\u2019s no knowing where you might be swept off to."
).encode("utf-8")
RFC7520_PAYLOAD_B64 = (
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH"
    "lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk"
    "b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm"
    "UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"
)
RFC7520_KID_ASYM = "bilbo.baggins@hobbiton.example"
RFC7520_KID_MAC = "018c0ae5-4d9b-471b-bfd6-eef314bc7037"
RFC7520_RSA = {  # 3.3
    "kty": "RSA",
    "n": (
        "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT"
        "-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqV"
        "wGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-"
        "oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde"
        "3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuC"
        "LqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5g"
        "HdrNP5zw"
    ),
    "e": "AQAB",
}
RFC7520_EC = {  # 3.1
    "kty": "EC",
    "crv": "P-521",
    "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
    "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1",
}
RFC7520_OCT = {"kty": "oct", "k": "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"}  # 3.5


def _rfc7520(alg: str, header_b64: str, signature_b64: str, jwk: dict, kid: str) -> dict:
    return {
        "alg": alg,
        "compact": f"{header_b64}.{RFC7520_PAYLOAD_B64}.{signature_b64}",
        "jwk": jwk,
        "kid": kid,
        "verify_at": 0,
        "has_exp": False,
        "payload_is_json": False,
    }


RFC7520 = {
    "4.1": _rfc7520(
        "RS256",
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
        "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmK"
        "ZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4J"
        "IwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8w"
        "W1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluP"
        "xUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_f"
        "cIe8u9ipH84ogoree7vjbU5y18kDquDg",
        RFC7520_RSA, RFC7520_KID_ASYM),
    # PSS signatures are randomized: this is the one printed in the RFC, which must verify.
    "4.2": _rfc7520(
        "PS384",
        "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
        "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2I"
        "pN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXU"
        "vdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRX"
        "e8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT"
        "0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a"
        "6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw",
        RFC7520_RSA, RFC7520_KID_ASYM),
    "4.3": _rfc7520(
        "ES512",
        "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
        "AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvb"
        "u9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kv"
        "AD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2",
        RFC7520_EC, RFC7520_KID_ASYM),
    "4.4": _rfc7520(
        "HS256",
        "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9",
        "s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0",
        RFC7520_OCT, RFC7520_KID_MAC),
}

RFC7515_A1_PAYLOAD = b'{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}'

# (group, name, vector, the payload bytes the RFC prints)
RFC_VECTORS = [
    ("rfc7515", "a1", RFC7515_A1, RFC7515_A1_PAYLOAD),
    ("rfc7515", "a2", RFC7515_A2, RFC7515_A1_PAYLOAD),
    ("rfc7515", "a3", RFC7515_A3, RFC7515_A1_PAYLOAD),
    ("rfc7515", "a4", RFC7515_A4, b"Payload"),
    ("rfc8037", "a4", RFC8037_A4, b"Example of Ed25519 signing"),
] + [("rfc7520", name, vec, RFC7520_PAYLOAD) for name, vec in RFC7520.items()]


def _flip_sig_bit(compact: str) -> str:
    h, p, s = compact.split(".")
    sig = bytearray(b64u_decode_strict(s))
    sig[len(sig) // 2] ^= 0x01
    return f"{h}.{p}.{b64u(bytes(sig))}"


def _jwcrypto_payload(compact: str, jwk_dict: dict, alg: str) -> bytes:
    obj = jc_jws.JWS()
    obj.allowed_algs = [alg]
    obj.deserialize(compact, key=jc_jwk.JWK(**jwk_dict))
    return obj.payload


def _joserfc_payload(compact: str, jwk_dict: dict, alg: str) -> bytes:
    return jf_jws.deserialize_compact(compact, jf_jwk.import_key(jwk_dict), algorithms=[alg]).payload


def _pyjwt_payload(compact: str, jwk_dict: dict, alg: str) -> bytes:
    key = jwt.PyJWK(jwk_dict, algorithm=alg).key
    return jwt.api_jws.PyJWS().decode_complete(compact, key, algorithms=[alg])["payload"]


def check_rfc_vectors():
    """Every RFC example verifies with its public JWK under jwcrypto, joserfc and PyJWT,
    yields exactly the RFC's payload, and is refused with one signature bit flipped."""
    verifiers = {"jwcrypto": _jwcrypto_payload, "joserfc": _joserfc_payload, "pyjwt": _pyjwt_payload}
    report = []
    for group, name, ex, payload in RFC_VECTORS:
        alg, compact, jwk_dict = ex["alg"], ex["compact"], ex["jwk"]
        header = json.loads(b64u_decode_strict(compact.split(".")[0]))
        assert header["alg"] == alg and header.get("kid") == ex.get("kid"), (group, name, header)
        assert b64u_decode_strict(compact.split(".")[1]) == payload, (group, name)
        # public JWK only
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk_dict), (group, name)
        for lib, fn in verifiers.items():
            assert fn(compact, jwk_dict, alg) == payload, (group, name, lib)
            try:
                fn(_flip_sig_bit(compact), jwk_dict, alg)
            except Exception:
                pass
            else:
                raise AssertionError(f"{group} {name}: {lib} accepted a flipped signature")
        is_json = True
        try:
            claims = json.loads(payload)
            is_json = isinstance(claims, dict)
        except ValueError:
            is_json = False
        assert ex["payload_is_json"] == is_json, (group, name)
        assert ex["has_exp"] == (is_json and "exp" in claims), (group, name)
        if ex["has_exp"]:
            assert ex["verify_at"] < claims["exp"], (group, name)
            # PyJWT with time frozen at verify_at (exp verified), and refusing after exp
            key = jwt.PyJWK(jwk_dict, algorithm=alg).key
            with pyjwt_frozen_time(ex["verify_at"]):
                jwt.decode(compact, key, algorithms=[alg])
            with pyjwt_frozen_time(claims["exp"] + 1):
                try:
                    jwt.decode(compact, key, algorithms=[alg])
                except jwt.ExpiredSignatureError:
                    pass
                else:
                    raise AssertionError(f"{group} {name}: not expired after exp")
        else:
            assert ex["verify_at"] == 0, (group, name)
        report.append(f"{group} {name} ({alg}): " + ", ".join(verifiers))
    return report


def check_rfc7515():
    expected = {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}
    for ex in (RFC7515_A1, RFC7515_A2, RFC7515_A3):
        # PyJWT
        key = jwt.PyJWK(ex["jwk"], algorithm=ex["alg"]).key
        claims = jwt.decode(ex["compact"], key, algorithms=[ex["alg"]], options={"verify_exp": False})
        assert claims == expected, claims
        # PyJWT with time frozen before exp (exp verified)
        with pyjwt_frozen_time(ex["verify_at"]):
            jwt.decode(ex["compact"], key, algorithms=[ex["alg"]])
        # joserfc
        obj = jf_jws.deserialize_compact(ex["compact"], jf_jwk.import_key(ex["jwk"]), algorithms=[ex["alg"]])
        assert json.loads(obj.payload) == expected


# --------------------------------------------------------------------------- cases

def main() -> int:
    keys = gen_keys()
    enc_key = rsa.generate_private_key(65537, 2048)
    attacker = rsa.generate_private_key(65537, 2048)
    weak_rsa = rsa.generate_private_key(65537, 1024)
    es384_jwk_priv = ec.generate_private_key(ec.SECP384R1())
    ops_enc_priv = ec.generate_private_key(ec.SECP256R1())
    oct_jwk_secret = secrets.token_bytes(32)
    # private material of JWKS-only keys, for signing and for the self-checks
    jwks_only = {"es384-jwk": ("ES384", es384_jwk_priv), "ops-enc": ("ES256", ops_enc_priv),
                 "oct-jwk": ("HS256", oct_jwk_secret)}

    jwks = {
        "keys": [
            public_jwk(keys["rs256-1"][1], kid="rs256-jwk", alg="RS256", use="sig"),
            public_jwk(keys["es256-1"][1], kid="es256-jwk"),
            public_jwk(keys["ed-1"][1], kid="ed-jwk"),
            public_jwk(enc_key, kid="enc-1", use="enc"),
            {"kty": "XYZ", "kid": "weird", "x": "AAAA"},
            # appended later: usable keys keep their order, the new skipped one comes last
            public_jwk(es384_jwk_priv, kid="es384-jwk"),
            public_jwk(ops_enc_priv, kid="ops-enc", key_ops=["encrypt"]),
            {"kty": "oct", "kid": "oct-jwk", "k": b64u(oct_jwk_secret)},
        ]
    }
    ref = Ref(keys, jwks)

    cases = []
    counter = [0]

    def claims(**over):
        counter[0] += 1
        c = {"sub": f"user-{counter[0]}", "iss": ISSUER, "aud": AUDIENCE, "iat": NOW - 10, "exp": NOW + 3600}
        for k, v in over.items():
            if v is DROP:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def sign_pyjwt(kid, payload, alg=None, headers=None, key=None, include_kid=True):
        a, priv = keys[kid] if kid in keys else (alg, key)
        h = dict(headers or {})
        if include_kid:
            h.setdefault("kid", kid)
        return jwt.encode(payload, key if key is not None else priv, algorithm=alg or a, headers=h or None)

    def sign_joserfc(kid, payload, signing_kid=None):
        a, priv = {**keys, **jwks_only}[signing_kid or kid]
        return jf_jwt.encode({"alg": a, "kid": kid}, payload, joserfc_key(a, priv), algorithms=[a])

    def add_valid(name, library, token, payload, verify_kid):
        cases.append({"name": name, "library": library, "token": token, "expect": "valid", "sub": payload["sub"]})
        cases[-1]["_verify_kid"] = verify_kid

    def add_invalid(name, library, token, reason):
        cases.append({"name": name, "library": library, "token": token, "expect": "invalid", "reason": reason})

    # ---- valid: every algorithm, both libraries (valid_<alg>_<library>; a second key of an
    # algorithm is named by its kid: rs256-4096 -> valid_rs256_4096_<library>)
    label, seen = {}, set()
    for kid, (alg, _) in keys.items():
        label[kid] = alg.lower() if alg not in seen else kid.replace("-", "_")
        seen.add(alg)
    for kid, (alg, _) in keys.items():
        p = claims()
        add_valid(f"valid_{label[kid]}_pyjwt", "pyjwt", sign_pyjwt(kid, p), p, kid)
    for kid, (alg, _) in keys.items():
        p = claims()
        add_valid(f"valid_{label[kid]}_joserfc", "joserfc", sign_joserfc(kid, p), p, kid)

    # ---- valid: variants
    p = claims(aud=["other", AUDIENCE])
    add_valid("valid_aud_array", "pyjwt", sign_pyjwt("hs256-1", p), p, "hs256-1")
    p = claims(aud=["other", AUDIENCE])
    add_valid("valid_aud_array_es256", "joserfc", sign_joserfc("es256-1", p), p, "es256-1")
    p = claims(nbf=NOW - 5)
    add_valid("valid_nbf_past", "pyjwt", sign_pyjwt("rs256-1", p), p, "rs256-1")
    p = claims(exp=NOW - 20)
    add_valid("valid_expired_within_skew", "pyjwt", sign_pyjwt("hs256-1", p), p, "hs256-1")
    p = claims(nbf=NOW + 20)
    add_valid("valid_nbf_within_skew", "joserfc", sign_joserfc("hs384-1", p), p, "hs384-1")
    p = claims(iat=NOW + 20)
    add_valid("valid_iat_within_skew", "pyjwt", sign_pyjwt("es384-1", p), p, "es384-1")
    p = claims()
    add_valid("valid_hs256_no_kid", "pyjwt", sign_pyjwt("hs256-1", p, include_kid=False), p, "hs256-1")
    p = claims(role=["admin", "dev"], tenant={"id": 7})
    add_valid("valid_custom_claims", "pyjwt", sign_pyjwt("rs256-1", p), p, "rs256-1")
    p = claims(role=["admin", "dev"], tenant={"id": 7})
    add_valid("valid_custom_claims_joserfc", "joserfc", sign_joserfc("ed-1", p), p, "ed-1")

    # ---- valid: JWKS keys (same key material, JWKS kids)
    p = claims()
    add_valid("valid_jwks_rs256", "pyjwt", sign_pyjwt("rs256-jwk", p, alg="RS256", key=keys["rs256-1"][1]), p, "rs256-jwk")
    p = claims()
    add_valid("valid_jwks_es256_no_alg", "joserfc", sign_joserfc("es256-jwk", p, signing_kid="es256-1"), p, "es256-jwk")
    p = claims()
    add_valid("valid_jwks_ed25519_no_alg", "pyjwt", sign_pyjwt("ed-jwk", p, alg="EdDSA", key=keys["ed-1"][1]), p, "ed-jwk")
    p = claims()
    add_valid("valid_jwks_es384_no_alg", "joserfc", sign_joserfc("es384-jwk", p), p, "es384-jwk")
    p = claims()
    add_valid("valid_jwks_oct_hs256_no_alg", "pyjwt",
              sign_pyjwt("oct-jwk", p, alg="HS256", key=oct_jwk_secret), p, "oct-jwk")

    hs = keys["hs256-1"][1]
    rs = keys["rs256-1"][1]
    es = keys["es256-1"][1]

    # ---- invalid: time / claims
    add_invalid("expired", "pyjwt", sign_pyjwt("hs256-1", claims(exp=NOW - 100)), "expired")
    add_invalid("expired_rs256", "joserfc", sign_joserfc("rs256-1", claims(exp=NOW - 100)), "expired")
    add_invalid("missing_exp", "pyjwt", sign_pyjwt("hs256-1", claims(exp=DROP)), "missing_exp")
    add_invalid("not_yet_valid", "pyjwt", sign_pyjwt("hs256-1", claims(nbf=NOW + 100)), "not_yet_valid")
    add_invalid("issued_in_future", "pyjwt", sign_pyjwt("hs256-1", claims(iat=NOW + 100)), "issued_in_future")
    add_invalid("wrong_issuer", "pyjwt", sign_pyjwt("hs256-1", claims(iss="https://evil.test")), "wrong_issuer")
    add_invalid("wrong_audience", "pyjwt", sign_pyjwt("hs256-1", claims(aud="payments")), "wrong_audience")
    add_invalid("wrong_audience_array", "joserfc", sign_joserfc("es256-1", claims(aud=["a", "b"])), "wrong_audience")

    # ---- invalid: signatures
    add_invalid("bad_signature_hs256_other_secret", "pyjwt",
                sign_pyjwt("hs256-1", claims(), alg="HS256", key=secrets.token_bytes(32)), "bad_signature")
    t = sign_pyjwt("hs256-1", claims())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(t[-1])
    # 43-char HS256 signature: last char carries 4 data bits (its low 2 bits are zero).
    t = t[:-1] + alphabet[(last + 32) % 64]
    add_invalid("bad_signature_hs256_last_char", "handmade", t, "bad_signature")
    t = sign_pyjwt("rs256-1", claims())
    h, pl, s = t.split(".")
    swapped = json.loads(b64u_decode_strict(pl))
    swapped["sub"] = "admin"
    add_invalid("bad_signature_rs256_payload_swapped", "handmade", f"{h}.{b64u(cjson(swapped))}.{s}", "bad_signature")
    t = sign_pyjwt("es256-1", claims())
    h, pl, s = t.split(".")
    sb = bytearray(b64u_decode_strict(s))
    assert len(sb) == 64
    sb[10] ^= 0xFF
    add_invalid("bad_signature_es256_flipped_byte", "handmade", f"{h}.{pl}.{b64u(bytes(sb))}", "bad_signature")
    t = sign_pyjwt("es512-1", claims())
    h, pl, s = t.split(".")
    sb = bytearray(b64u_decode_strict(s))
    assert len(sb) == 132
    sb[40] ^= 0xFF
    add_invalid("bad_signature_es512_flipped_byte", "handmade", f"{h}.{pl}.{b64u(bytes(sb))}", "bad_signature")

    # ---- invalid: alg none
    for i, name in enumerate(["none", "None", "nOnE"]):
        tok = b64u(cjson({"alg": name, "typ": "JWT"})) + "." + b64u(cjson(claims())) + "."
        add_invalid(f"alg_none_{['lower', 'capitalized', 'mixed'][i]}", "handmade", tok, "unsupported_algorithm")
    add_invalid("alg_unknown_hs1024", "handmade",
                handmade({"alg": "HS1024", "kid": "hs256-1"}, claims(), "HS256", hs), "unsupported_algorithm")

    # ---- invalid: algorithm confusion
    pem_bytes = spki_pem(rs.public_key()).encode("ascii")
    add_invalid("algorithm_mismatch_hs256_with_rsa_pem", "handmade",
                handmade({"alg": "HS256", "typ": "JWT", "kid": "rs256-1"}, claims(), "HS256", pem_bytes),
                "algorithm_mismatch")
    add_invalid("algorithm_mismatch_rs384_on_rs256_key", "pyjwt",
                sign_pyjwt("rs256-1", claims(), alg="RS384", key=rs), "algorithm_mismatch")

    # ---- invalid: keys
    add_invalid("unknown_kid", "pyjwt", sign_pyjwt("nope", claims(), alg="HS256", key=hs), "unknown_key")
    attacker_jwk = public_jwk(attacker, kid="attacker", alg="RS256", use="sig")
    add_invalid("embedded_jwk_and_jku", "pyjwt",
                sign_pyjwt("attacker", claims(), alg="RS256", key=attacker,
                           headers={"jku": "https://evil.test/jwks.json", "jwk": attacker_jwk}), "unknown_key")
    add_invalid("embedded_jwk_only", "pyjwt",
                sign_pyjwt("attacker", claims(), alg="RS256", key=attacker, headers={"jwk": attacker_jwk}),
                "unknown_key")
    add_invalid("jku_only", "pyjwt",
                sign_pyjwt("attacker", claims(), alg="RS256", key=attacker,
                           headers={"jku": "https://evil.test/jwks.json"}), "unknown_key")
    add_invalid("jwks_enc_key_not_for_signing", "pyjwt",
                sign_pyjwt("enc-1", claims(), alg="RS256", key=enc_key), "unknown_key")
    add_invalid("jwks_key_ops_encrypt_not_for_signing", "pyjwt",
                sign_pyjwt("ops-enc", claims(), alg="ES256", key=ops_enc_priv), "unknown_key")

    # ---- invalid: malformed
    good = sign_pyjwt("hs256-1", claims())
    assert len(good.split(".")[2]) % 4 == 3
    add_invalid("malformed_padding", "handmade", good + "=", "malformed")
    h, pl, s = sign_pyjwt("hs256-1", claims()).split(".")
    add_invalid("malformed_padding_header", "handmade", f"{h}{'=' * (-len(h) % 4) or '===='}.{pl}.{s}", "malformed")
    add_invalid("malformed_two_segments", "handmade", ".".join(sign_pyjwt("hs256-1", claims()).split(".")[:2]),
                "malformed")
    add_invalid("malformed_header_json_array", "handmade",
                handmade(b'["alg","HS256"]', claims(), "HS256", hs), "malformed")
    add_invalid("malformed_header_not_json", "handmade", handmade(b"not json", claims(), "HS256", hs), "malformed")
    # standard base64 alphabet in payload: find a payload whose encoding has '+' or '/'
    n = 0
    while True:
        p = claims(nonce=f"~~~?>?>{n}") if n == 0 else dict(p, nonce=f"~~~?>?>{n}")
        std = base64.b64encode(cjson(p)).rstrip(b"=").decode()
        if "+" in std or "/" in std:
            break
        n += 1
    si = b64u(cjson({"alg": "HS256", "typ": "JWT", "kid": "hs256-1"})) + "." + std
    add_invalid("malformed_standard_base64_alphabet", "handmade",
                si + "." + b64u(raw_sign("HS256", hs, si.encode())), "malformed")
    add_invalid("malformed_four_segments", "handmade", sign_pyjwt("hs256-1", claims()) + ".AAAA", "malformed")
    add_invalid("malformed_empty_segments", "handmade", "..", "malformed")
    h, pl, s = sign_pyjwt("hs256-1", claims()).split(".")
    add_invalid("malformed_empty_payload", "handmade", f"{h}..{s}", "malformed")
    add_invalid("malformed_payload_not_json", "handmade",
                handmade({"alg": "HS256", "kid": "hs256-1"}, b"not json", "HS256", hs), "malformed")

    # ---- invalid: crit / claim types
    add_invalid("critical_header", "handmade",
                handmade({"alg": "HS256", "typ": "JWT", "kid": "hs256-1", "crit": ["exp"]}, claims(), "HS256", hs),
                "critical_header")
    add_invalid("invalid_claim_exp_string", "pyjwt",
                sign_pyjwt("hs256-1", claims(exp=str(NOW + 3600))), "invalid_claim")
    add_invalid("invalid_claim_kid_number", "handmade",
                handmade({"alg": "HS256", "typ": "JWT", "kid": 123}, claims(), "HS256", hs), "invalid_claim")

    # ------------------------------------------------------------------ self-checks
    key_by_kid = {kid: (alg, priv) for kid, (alg, priv) in keys.items()}
    key_by_kid["rs256-jwk"] = keys["rs256-1"]
    key_by_kid["es256-jwk"] = keys["es256-1"]
    key_by_kid["ed-jwk"] = keys["ed-1"]
    # ops-enc stays out: a kid that names no usable key is rejected by the lookup itself
    key_by_kid.update({kid: v for kid, v in jwks_only.items() if kid != "ops-enc"})
    jwks_set = jf_jwk.KeySet.import_key_set({"keys": [j for j in jwks["keys"] if j["kty"] != "XYZ"]})
    jwks_by_kid = {j["kid"]: j for j in jwks["keys"]}

    for c in cases:
        if c["expect"] == "valid":
            kid = c.pop("_verify_kid")
            alg, priv = key_by_kid[kid]
            pub = priv if alg.startswith("HS") else priv.public_key()
            if kid in jwks_by_kid:  # verify through the JWK serialization
                pub = jwt.PyJWK(jwks_by_kid[kid], algorithm=alg).key
                jkey = jwks_set
            else:
                jkey = joserfc_key(alg, priv)
            a = pyjwt_verify_valid(c["token"], pub, alg)
            b = joserfc_verify_valid(c["token"], jkey, alg)
            assert a["sub"] == b["sub"] == c["sub"], c["name"]
            assert ref.verify(c["token"]) == "valid", (c["name"], ref.verify(c["token"]))
        else:
            got = ref.verify(c["token"])
            assert got == c["reason"], (c["name"], got, c["reason"])
            # and PyJWT must reject it too, given the key a kid lookup would pick
            # (a kid that names no key is rejected by the lookup itself)
            rejected = False
            try:
                hdr = jwt.get_unverified_header(c["token"])
                kid = hdr.get("kid", "hs256-1")
                if isinstance(kid, str) and kid in key_by_kid:
                    alg, priv = key_by_kid[kid]
                    pub = priv if alg.startswith("HS") else priv.public_key()
                    pyjwt_verify_valid(c["token"], pub, alg)
                else:
                    rejected = True
            except Exception:
                rejected = True
            # PyJWT is knowingly lenient here (accepts '=' padding, int()-coerces exp);
            # the gateway must be stricter.
            assert rejected or c["name"] in PYJWT_LENIENT, c["name"]

    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"

    check_rfc7515()
    rfc_report = check_rfc_vectors()

    # the weak key really is 1024 bits, and appears nowhere among the usable keys
    assert weak_rsa.key_size == 1024
    weak_pem = spki_pem(weak_rsa.public_key())
    assert all(spki_pem(priv.public_key()) != weak_pem for alg, priv in keys.values() if not alg.startswith("HS"))
    assert all(
        (priv.key_size if isinstance(priv, rsa.RSAPrivateKey) else 4096) >= 2048 for _, priv in keys.values()
        if not isinstance(priv, bytes))

    out = {
        "generated_by": "scripts/gen_jwt_fixtures.py",
        "libraries": {
            "pyjwt": pkg_version("pyjwt"),
            "joserfc": pkg_version("joserfc"),
            "cryptography": pkg_version("cryptography"),
        },
        "now": NOW,
        "provider": {"issuer": ISSUER, "audiences": [AUDIENCE], "clock_skew_seconds": SKEW},
        "keys": [
            {"kid": kid, "alg": alg, "secret_base64url": b64u(priv)} if alg.startswith("HS")
            else {"kid": kid, "alg": alg, "public_key_pem": spki_pem(priv.public_key())}
            for kid, (alg, priv) in keys.items()
        ],
        "private_keys": {"rs256-1": pkcs8_pem(rs)},
        "jwks": jwks,
        "cases": cases,
        "rfc7515": {"a1": RFC7515_A1, "a2": RFC7515_A2, "a3": RFC7515_A3, "a4": RFC7515_A4},
        "rfc8037": {"a4": RFC8037_A4},
        "rfc7520": RFC7520,
        "weak_keys": [{"kid": "rs-1024", "alg": "RS256", "public_key_pem": weak_pem}],
    }
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    with open(OUT_PATH, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")

    from collections import Counter
    cnt = Counter(c.get("reason", "valid") for c in cases)
    print(f"wrote {os.path.relpath(OUT_PATH, REPO_ROOT)}: {len(cases)} cases")
    for k, v in sorted(cnt.items()):
        print(f"  {k}: {v}")
    print("RFC examples verified by:")
    for line in rfc_report:
        print(f"  {line}")
    return 0


DROP = object()
PYJWT_LENIENT = {"malformed_padding", "invalid_claim_exp_string"}

if __name__ == "__main__":
    sys.exit(main())
