"""A keyring backend that is locked, as a desktop keyring is after the session locks it (for
``PYTHON_KEYRING_BACKEND=tests.harness.locked_keyring.LockedKeyring`` in a subprocess)."""

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked


class LockedKeyring(KeyringBackend):
    priority = 1  # chosen only by name

    def get_password(self, service, username):
        raise KeyringLocked("Failed to unlock the collection!")

    def set_password(self, service, username, password):
        raise KeyringLocked("Failed to unlock the collection!")

    def delete_password(self, service, username):
        raise KeyringLocked("Failed to unlock the collection!")
