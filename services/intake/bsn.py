"""Encryption of the BSN at rest (AES-256-GCM) and keyed hashes of requests that contain it.

The key comes from ``IPSFLOW_INTAKE_BSN_KEY`` (base64 of 32 bytes). Without it a development key is created
once in ``.local/dev-keys/bsn.key`` (like the JWT dev keys); production must configure a real key.
The application id is the associated data, so a ciphertext copied onto another application does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from servicekit.auth import dev_key_dir

PREFIX = "v1:"
KEY_BYTES = 32


class BsnCipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the BSN key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self._mac_key = hmac.new(key, b"ipsflow-intake-request-mac", hashlib.sha256).digest()

    def encrypt(self, bsn: str, aanvraag_id: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, bsn.encode(), aanvraag_id.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str, aanvraag_id: str) -> str:
        if not stored.startswith(PREFIX):
            raise ValueError("unknown BSN ciphertext version")
        raw = base64.b64decode(stored[len(PREFIX):])
        return self._aead.decrypt(raw[:12], raw[12:], aanvraag_id.encode()).decode()

    def mac(self, data: bytes) -> str:
        """A keyed hash (HMAC-SHA256): compares requests without storing a guessable hash of a BSN."""
        return hmac.new(self._mac_key, data, hashlib.sha256).hexdigest()


def load_key(configured: str) -> bytes:
    if configured:
        try:
            key = base64.b64decode(configured, validate=True)
        except binascii.Error:
            raise ValueError("IPSFLOW_INTAKE_BSN_KEY is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise ValueError(f"IPSFLOW_INTAKE_BSN_KEY must decode to {KEY_BYTES} bytes")
        return key
    return _dev_key(dev_key_dir() / "bsn.key")


def _dev_key(path: Path) -> bytes:
    """Create the development key once; concurrent processes agree because the file appears atomically."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".bsn.key.{os.getpid()}")
        tmp.write_text(base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return base64.b64decode(path.read_text().strip())
