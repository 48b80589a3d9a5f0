"""Fernet encryption of secrets at rest (Cliniko API keys), with key rotation.

ENCRYPTION_KEY is a comma-separated list: the first key encrypts, any of them decrypts
(MultiFernet), so a new key can be put in front before `flask keys rotate` moves every
stored secret onto it.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


def parse_keys(value):
    """Return the Fernet keys of a comma-separated ENCRYPTION_KEY (the first one encrypts)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _fernets():
    return [Fernet(key.encode()) for key in parse_keys(current_app.config["ENCRYPTION_KEY"])]


def encrypt(clear):
    """Encrypt a secret for storage with the first key."""
    return _fernets()[0].encrypt(clear.encode()).decode()


def decrypt(token):
    """Decrypt a stored secret; a wrong ENCRYPTION_KEY is a clear error without the secret."""
    try:
        return MultiFernet(_fernets()).decrypt(token.encode()).decode()
    except InvalidToken:
        raise RuntimeError("stored secret cannot be decrypted with this ENCRYPTION_KEY") from None


def is_current(token):
    """Tell whether a stored secret is already encrypted with the first key."""
    try:
        _fernets()[0].decrypt(token.encode())
        return True
    except InvalidToken:
        return False


def rotate(token):
    """Return the stored secret re-encrypted with the first key (it must decrypt with one of them)."""
    try:
        return MultiFernet(_fernets()).rotate(token.encode()).decode()
    except InvalidToken:
        raise RuntimeError("stored secret cannot be decrypted with this ENCRYPTION_KEY") from None
