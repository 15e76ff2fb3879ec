"""Object storage: atomic writes per filesystem, small reads, lineage. See the package docstring."""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.sinks.destinations import _URI

if TYPE_CHECKING:
    from airflow_provider_cfbilling.version_compat import ObjectStoragePath


log = logging.getLogger(__name__)

# Filesystems whose transactional write (autocommit=False + commit/discard) is verified to
# publish nothing until commit and to clean up on discard: tested against an S3 server.
_TRANSACTIONAL_FILESYSTEMS = frozenset({"s3fs.core.S3FileSystem"})


def write_bytes(uri: str, data: bytes, conn_id: str | None = None) -> None:
    """Write a small object (a manifest) atomically, like :func:`write_records` writes records."""
    with _open_atomic(_object_path(uri, conn_id)) as out:
        out.write(data)


def read_bytes(uri: str, conn_id: str | None = None) -> bytes | None:
    """A small object's bytes (a manifest), or ``None`` when it does not exist."""
    path = _object_path(uri, conn_id)
    fs = _filesystem(path)
    try:
        with fs.open(path.path, "rb") as file:
            return bytes(file.read())
    except FileNotFoundError:
        return None


def object_sha256(uri: str, conn_id: str | None = None) -> str | None:
    """The SHA-256 of an object's bytes, streamed; ``None`` when it does not exist."""
    path = _object_path(uri, conn_id)
    fs = _filesystem(path)
    digest = hashlib.sha256()
    try:
        with fs.open(path.path, "rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def check_filesystem(uri: str, conn_id: str | None = None) -> None:
    """Raise the ``CloudflareInputError`` :func:`write_records` would raise for a destination Airflow has no
    filesystem for (naming the provider to install), without reading or writing anything."""
    _filesystem(_object_path(uri, conn_id))


def _object_path(uri: str, conn_id: str | None) -> ObjectStoragePath:
    from airflow_provider_cfbilling.version_compat import ObjectStoragePath

    try:
        # conn_id only when given: an explicit None would hide a 'conn_id@bucket' URI on Airflow 2.
        path = ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)
        # Resolve the filesystem now, so an unknown scheme is reported with the URI as the user
        # wrote it (Airflow 2's ObjectStoragePath renders 'foo://b/k' as 'foo:///b/k').
        if not _plain_local(path):
            path.fs  # noqa: B018
    except ValueError as error:  # "Unsupported filesystem: 'foo'", "No filesystem registered for scheme foo"
        raise _no_filesystem(uri, uri.split(":", 1)[0], error) from error
    return path


_LOCAL_FILESYSTEM: Any = None


def _plain_local(path: ObjectStoragePath) -> bool:
    """A ``file://`` path without a connection: Airflow's filesystem for it is always fsspec's
    ``LocalFileSystem``, so the providers' filesystems (every installed provider's, ``boto3``
    included: 0.2 s and 300 modules) need not be registered to find it."""
    return getattr(path, "protocol", None) in ("file", "local") and not getattr(path, "conn_id", None)


def _lineage_uri(uri: str) -> str:
    """The URI without a ``conn_id@`` userinfo part: lineage names the data, not the credentials."""
    match = _URI.fullmatch(uri)
    if match and "@" in match["rest"].split("/", 1)[0]:
        bucket_and_key = match["rest"].split("@", 1)[1]
        return f"{match['scheme']}://{bucket_and_key}"
    return uri


def _report_lineage(path: ObjectStoragePath, uri: str) -> None:
    # Writes go through the filesystem, not ObjectStoragePath.open (whose wrapper would report
    # the temporary path, once per write call), so the final object is reported here, once.
    try:
        from airflow_provider_cfbilling.version_compat import report_output_asset

        report_output_asset(path, uri)
    except Exception:  # lineage is best-effort: the data is written, never fail the task for it
        log.warning("Could not report %s as lineage output", uri, exc_info=True)


# ---- atomic targets -------------------------------------------------------------------------


class _CountingWriter(io.RawIOBase):
    """A binary writer that counts and hashes what reaches the target (the final object's bytes)."""

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__()
        self._target = target
        self.bytes_written = 0
        self.sha256 = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self._target.write(data)
        self.sha256.update(data)
        self.bytes_written += size
        return size

    def tell(self) -> int:
        return self.bytes_written

    def close(self) -> None:
        # The target is finalised (committed or discarded) by _open_atomic, not by a format
        # writer (GzipFile, ParquetWriter) closing what it was given.
        super().close()


def _temporary_sibling(final: str) -> str:
    parent, _, name = final.rpartition("/")
    # Hidden (readers of a partition such as Spark, Hive and Athena skip dot-files), unique per
    # attempt, and short enough for a 255-byte file-name limit.
    return f"{parent}/.{name[:200]}.{secrets.token_hex(8)}.tmp"


class _LocalReplace:
    """Local disk: a temporary sibling, fsynced, then ``os.replace`` over the final path."""

    def __init__(self, final: str) -> None:
        self.final = final
        self.parent = os.path.dirname(final) or "/"
        os.makedirs(self.parent, exist_ok=True)
        self.temporary = _temporary_sibling(final)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        descriptor = os.open(self.temporary, flags, 0o666)  # umask applies, like a normal file
        self.file: IO[bytes] = os.fdopen(descriptor, "wb", buffering=1 << 20)

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.temporary, self.final)
        try:  # make the rename itself durable
            directory = os.open(self.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError:
            pass

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            try:
                os.unlink(self.temporary)
            except FileNotFoundError:
                pass


class _Transactional:
    """Filesystems with verified transactional files (S3): write, then commit or discard."""

    def __init__(self, fs: Any, final: str) -> None:
        self.fs = fs
        self.file = fs.open(final, "wb", autocommit=False)

    def commit(self) -> None:
        try:
            self.file.close()  # uploads the last part; nothing is visible yet
            self.file.commit()  # completes the upload: the object appears, whole
        finally:
            self._forget()

    def abort(self) -> None:
        try:
            self.file.discard()  # aborts the multipart upload, if one was started
        finally:
            # Closed without flushing: closing normally would upload the buffer (and could start
            # a new multipart upload) only to throw it away.
            self.file.closed = True
            self._forget()

    def _forget(self) -> None:
        # fsspec queues every autocommit=False file on the (process-wide, cached) filesystem's
        # transaction for a later fs.transaction commit; this write is finished either way.
        try:
            self.fs.transaction.files.remove(self.file)
        except (AttributeError, ValueError):
            pass


class _TemporarySibling:
    """Other filesystems: a hidden temporary object, moved into place, then gone."""

    def __init__(self, fs: Any, final: str) -> None:
        self.fs = fs
        self.final = final
        self.temporary = _temporary_sibling(final)
        self.file = fs.open(self.temporary, "wb")

    def commit(self) -> None:
        self.file.close()
        try:
            self.fs.mv(self.temporary, self.final)
        finally:
            self._remove_temporary()

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            self._remove_temporary()

    def _remove_temporary(self) -> None:
        try:
            if self.fs.exists(self.temporary):
                self.fs.rm(self.temporary)
        except FileNotFoundError:
            pass


_FILESYSTEM_PROVIDERS = {
    "s3": "apache-airflow-providers-amazon[s3fs]",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "abfss": "apache-airflow-providers-microsoft-azure",
    "adl": "apache-airflow-providers-microsoft-azure",
}


def _filesystem(path: ObjectStoragePath) -> Any:
    global _LOCAL_FILESYSTEM
    if _plain_local(path):
        if _LOCAL_FILESYSTEM is None:
            from fsspec.implementations.local import LocalFileSystem

            _LOCAL_FILESYSTEM = LocalFileSystem()
        return _LOCAL_FILESYSTEM
    try:
        return path.fs
    except ValueError as error:  # "No filesystem registered for scheme gs"
        raise _no_filesystem(str(path), path.protocol or "file", error) from error


def _no_filesystem(uri: str, scheme: str, error: Exception) -> CloudflareInputError:
    provider = _FILESYSTEM_PROVIDERS.get(scheme)
    hint = f"Install {provider}" if provider else "Install the Airflow provider that supplies it"
    return CloudflareInputError(
        "destination", f"{uri!r}: Airflow has no filesystem for {scheme}:// here ({error})", hint
    )


def _atomic_target(path: ObjectStoragePath) -> _LocalReplace | _Transactional | _TemporarySibling:
    from fsspec.implementations.local import LocalFileSystem

    fs = _filesystem(path)
    if isinstance(fs, LocalFileSystem):
        return _LocalReplace(path.path)
    classes = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(fs).__mro__}
    if classes & _TRANSACTIONAL_FILESYSTEMS:
        return _Transactional(fs, path.path)
    return _TemporarySibling(fs, path.path)


@contextmanager
def _open_atomic(path: ObjectStoragePath) -> Iterator[_CountingWriter]:
    """Yield a binary writer whose bytes appear at ``path`` all at once, or not at all."""
    target = _atomic_target(path)
    out = _CountingWriter(target.file)
    try:
        yield out
    except BaseException:
        try:
            target.abort()
        except Exception:
            log.warning("Could not clean up the partial write to %s", path, exc_info=True)
        raise
    try:
        target.commit()
    except BaseException:
        try:
            target.abort()
        except Exception:
            log.debug("Cleanup after a failed commit to %s failed", path, exc_info=True)
        raise


@contextmanager
def _compressed(out: _CountingWriter, compression: str | None) -> Iterator[IO[bytes]]:
    if compression is None:
        yield out  # type: ignore[misc]
        return
    # No file name and mtime 0 in the header, so the same records give the same bytes.
    stream = gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=6, mtime=0)
    try:
        yield stream  # type: ignore[misc]
    except BaseException:
        # The target is being discarded: finish the gzip stream into a throwaway buffer, so that
        # nothing (not even garbage collection) writes a trailer to the discarded target.
        stream.fileobj = io.BytesIO()
        try:
            stream.close()
        except Exception:
            pass
        raise
    stream.close()
