"""File digests: the one place a file is hashed (downloads, data digests, checkpoint and reference sha256s)."""
import hashlib


def file_digest(path, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path) -> str:
    """Hex sha256 of a file."""
    return file_digest(path, "sha256")
