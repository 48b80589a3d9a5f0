"""Fernet encryption of secrets at rest (Cliniko API keys)."""

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


def _fernet():
    return Fernet(current_app.config["ENCRYPTION_KEY"].encode())


def encrypt(clear):
    """Encrypt a secret for storage."""
    return _fernet().encrypt(clear.encode()).decode()


def decrypt(token):
    """Decrypt a stored secret; a wrong ENCRYPTION_KEY is a clear error without the secret."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise RuntimeError("stored secret cannot be decrypted with this ENCRYPTION_KEY") from None
