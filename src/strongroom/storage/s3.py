"""The S3 backend (boto3): any S3-compatible object store.

Objects are keys ``PREFIX/<type>/<name>`` in one bucket, so many repositories
(many passbolt instances) share a bucket under their own prefixes. S3 writes are
atomic per object: a reader sees the old object or the new one, never a prefix.

Location options (``s3://BUCKET/PREFIX?option=value&...``):

- ``endpoint``: the store's URL (default: AWS); ``region`` (default ``us-east-1``);
- ``addressing``: ``path``, ``virtual`` or ``auto`` (default ``path`` when an
  endpoint is named, else ``auto``);
- ``checksums``: ``on`` (default) sends a SHA-256 checksum with every upload and
  part, checked by the store; ``off`` for stores that reject checksum headers;
- ``part_size_mb`` (default 16): objects larger than this go up in multipart
  uploads of parts of this size (memory stays at one part beyond the object);
- ``timeout`` in seconds (default 60) for connecting and for each read;
- ``lock``: ``governance`` or ``compliance`` puts S3 Object Lock retention on
  every written object except lock files; ``lock_days`` (default 30) how long;
- ``probe``: ``on`` (default) probes what the store really does when opened.

Capabilities are probed, not assumed (stores answer 200 to calls they ignore):
a create-only write (``If-None-Match: *``) of a probe object is sent twice and
must be refused the second time; with ``lock``, a retained probe object must
refuse deletion, or opening fails, since the promised immutability would be false;
a delete of the probe object tells whether these credentials may delete
(append-only credentials may not: backup needs no delete). Probe objects live under
``PREFIX/probes/``, outside every object type.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config as BotoConfig

from strongroom.errors import NoSpaceError, ObjectNotFound, PermanentStorageError, StorageError
from strongroom.execute import mask
from strongroom.storage.backend import Capabilities, Handle, ObjectInfo, ObjectType
from strongroom.storage.location import Credentials, Location

log = logging.getLogger(__name__)

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
_NO_SPACE = {"QuotaExceeded", "XMinioStorageFull", "StorageFull", "EntityTooLarge"}
_PERMANENT = {
    "AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "AllAccessDisabled",
    "InvalidBucketName", "InvalidRequest", "InvalidArgument", "MethodNotAllowed", "NotImplemented", "400", "405",
    "412", "PreconditionFailed", "ObjectLockConfigurationNotFoundError", "InvalidObjectState", "AccountProblem",
    "InvalidDigest", "BadDigest", "XAmzContentSHA256Mismatch", "InvalidToken", "ExpiredToken", "MalformedXML",
}
_TRANSIENT_LIBRARY_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.HTTPClientError,
)


def _error_code(error: botocore.exceptions.ClientError) -> tuple[str, int]:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def translate(error: Exception, what: str) -> StorageError:
    """Map a boto3/botocore error to the storage error family (messages masked)."""
    if isinstance(error, StorageError):
        return error
    if isinstance(error, botocore.exceptions.ClientError):
        code, status = _error_code(error)
        text = mask(str(error.response.get("Error", {}).get("Message", "")) or code or str(status))
        if code in _NOT_FOUND or status == 404:
            if code == "NoSuchBucket":
                return PermanentStorageError(f"{what}: the bucket does not exist", hint="create it, or fix the location")
            return ObjectNotFound(f"{what}: not found")
        if code in _NO_SPACE:
            return NoSpaceError(f"{what}: the store is full or the object too large ({code})",
                                hint="raise the quota or free space")
        if code in ("AccessDenied", "403") or status == 403:
            return PermanentStorageError(f"{what}: access denied ({text})",
                                         hint="check the credentials and the bucket policy (or object lock retention)")
        if code in _PERMANENT or (400 <= status < 500 and status not in (408, 429)):
            return PermanentStorageError(f"{what}: the store refused the request ({code or status}: {text})")
        return StorageError(f"{what}: the store answered {code or status} ({text})")
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return PermanentStorageError(f"{what}: no S3 credentials",
                                     hint="put access_key_id and secret_access_key in a credentials file or the environment")
    if isinstance(error, botocore.exceptions.ParamValidationError):
        return PermanentStorageError(f"{what}: invalid request ({mask(str(error))})")
    if isinstance(error, _TRANSIENT_LIBRARY_ERRORS) or isinstance(error, OSError):
        return StorageError(f"{what}: {mask(str(error))}")
    if isinstance(error, botocore.exceptions.BotoCoreError):
        return StorageError(f"{what}: {mask(str(error))}")
    raise error


class S3Backend:
    """Objects as keys under a prefix of an S3 bucket. Raises only the storage error family."""

    def __init__(
        self,
        location: Location,
        credentials: Credentials,
        *,
        create: bool = False,
        connections: int = 4,
    ) -> None:
        """Connect to the bucket named by ``location``, probe what the store does.

        Raises PermanentStorageError (missing bucket, refused credentials, object lock
        requested but not enforced), StorageError (the store cannot be reached).
        """
        self._location = location
        self.bucket = location.host
        self.prefix = location.path
        endpoint = location.option("endpoint")
        addressing = location.option("addressing") or ("path" if endpoint else "auto")
        if addressing not in ("path", "virtual", "auto"):
            raise PermanentStorageError(f"addressing={addressing!r} is not path, virtual or auto")
        self.checksums = location.flag("checksums", True)
        try:
            self.part_size = int(float(location.option("part_size_mb") or 16) * 1024 * 1024)
            timeout = float(location.option("timeout") or 60)
            self.lock_days = float(location.option("lock_days") or 30)
        except ValueError:
            raise PermanentStorageError("part_size_mb, timeout and lock_days must be numbers") from None
        if self.part_size < 5 * 1024 * 1024:
            raise PermanentStorageError("part_size_mb must be at least 5 (S3's smallest part)")
        self.lock_mode = (location.option("lock") or "").upper() or None
        if self.lock_mode not in (None, "GOVERNANCE", "COMPLIANCE"):
            raise PermanentStorageError(f"lock={location.option('lock')!r} is neither governance nor compliance")
        checksum_setting = "when_supported" if self.checksums else "when_required"
        config = BotoConfig(
            region_name=location.option("region") or "us-east-1",
            signature_version="s3v4",
            s3={"addressing_style": addressing},
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": 1},  # the retry layer retries, with backoff
            max_pool_connections=max(10, connections * 2),
            request_checksum_calculation=checksum_setting,
            # Validation is asked for per request (whole objects only): some stores send the
            # whole object's checksum with a ranged answer, which can never match.
            response_checksum_validation="when_required",
            tcp_keepalive=True,
        )
        session = boto3.session.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
        )
        self.client: Any = session.client("s3", endpoint_url=endpoint, config=config)
        self._versioned = False
        self._capabilities = Capabilities(delete=True, atomic_save=True, local_path=False)
        self._probe_lock = threading.Lock()
        self._check_bucket(create)
        if location.flag("probe", True):
            self._capabilities = self.probe()

    @property
    def location(self) -> str:
        endpoint = self._location.option("endpoint")
        where = f" at {endpoint}" if endpoint else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def _key(self, handle: Handle) -> str:
        return f"{self.prefix}/{handle.type.value}/{handle.name}" if self.prefix else f"{handle.type.value}/{handle.name}"

    def _call(self, what: str, operation: str, **parameters: Any) -> Any:
        try:
            return getattr(self.client, operation)(**parameters)
        except Exception as error:
            raise translate(error, what) from None

    def _check_bucket(self, create: bool) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as error:
            code, status = _error_code(error)
            if not (code in ("404", "NoSuchBucket", "NotFound") or status == 404) or not create:
                raise translate(error, f"opening the bucket {self.bucket}") from None
            parameters: dict[str, Any] = {"Bucket": self.bucket}
            if self.lock_mode:
                parameters["ObjectLockEnabledForBucket"] = True
            self._call(f"creating the bucket {self.bucket}", "create_bucket", **parameters)
        except Exception as error:
            raise translate(error, f"opening the bucket {self.bucket}") from None
        try:
            answer = self.client.get_bucket_versioning(Bucket=self.bucket)
            self._versioned = answer.get("Status") == "Enabled"
        except Exception as error:  # noqa: BLE001 - a store without versioning calls is unversioned
            log.debug("bucket versioning unknown (%s): treating %s as unversioned", type(error).__name__, self.bucket)

    # Probing.

    def probe(self) -> Capabilities:
        """Find out what the store really does, with probe objects under ``PREFIX/probes/``.

        Returns the Capabilities. Raises PermanentStorageError when object lock was
        asked for and the store does not enforce it, StorageError on failures.
        """
        base = f"{self.prefix}/probes/" if self.prefix else "probes/"
        key = base + secrets.token_hex(8)
        self._call("probing the store (write)", "put_object", Bucket=self.bucket, Key=key, Body=b"probe", IfNoneMatch="*")
        conditional = False
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"probe", IfNoneMatch="*")
        except botocore.exceptions.ClientError as error:
            code, status = _error_code(error)
            conditional = status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict")
            if not conditional:
                log.debug("conditional write probe answered %s %s", status, code)
        except Exception as error:
            raise translate(error, "probing the store (conditional write)") from None
        delete = True
        try:
            self._remove_key(key, "probing the store (delete)")
        except ObjectNotFound:
            pass
        except PermanentStorageError:
            delete = False  # append-only credentials: fine for backup, prune needs others
        immutable = False
        if self.lock_mode:
            immutable = self._probe_lock_enforced(base + secrets.token_hex(8))
        log.info("storage %s: conditional writes %s, delete %s, object lock %s", self.location,
                 "enforced" if conditional else "ignored", "allowed" if delete else "refused",
                 "enforced" if immutable else "not used")
        return Capabilities(delete=delete, atomic_save=True, local_path=False,
                            conditional_write=conditional, immutable=immutable)

    def _probe_lock_enforced(self, key: str) -> bool:
        """Write a retained probe object (governance mode, 10 minutes) and check that deleting it is refused."""
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10)
        answer = self._call("probing object lock (write)", "put_object", Bucket=self.bucket, Key=key, Body=b"probe",
                            ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until,
                            **self._integrity(b"probe"))
        version = answer.get("VersionId")
        refused = False
        try:
            parameters: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
            if version:
                parameters["VersionId"] = version
            self.client.delete_object(**parameters)
            still_there = True
            try:
                self.client.head_object(**parameters)
            except botocore.exceptions.ClientError:
                still_there = False
            refused = still_there and bool(version)
        except botocore.exceptions.ClientError as error:
            code, status = _error_code(error)
            refused = status == 403 or code in ("AccessDenied", "InvalidObjectState")
            if refused and version:
                try:  # tidy up when the credentials may bypass governance; else it expires in 10 minutes
                    self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version,
                                              BypassGovernanceRetention=True)
                except Exception:  # noqa: BLE001 - a leftover probe is harmless
                    pass
        except Exception as error:
            raise translate(error, "probing object lock (delete)") from None
        if not refused:
            raise PermanentStorageError(
                f"the store at {self.location} accepted an object lock retention but let the object be deleted: "
                "it does not enforce S3 Object Lock, so the requested immutability cannot be guaranteed",
                hint="use a store that enforces object lock (a bucket created with object lock enabled), "
                "or remove the lock= option",
            )
        return True

    def _integrity(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """Checksum parameters for an upload: SHA-256 when checksums are on, else Content-MD5 for locked writes."""
        if self.checksums:
            return {"ChecksumAlgorithm": "SHA256"}
        if self.lock_mode:
            # S3 demands an integrity header on object-lock writes.
            return {"ContentMD5": base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()}
        return {}

    def _lock_parameters(self, handle: Handle) -> dict[str, Any]:
        if not self.lock_mode or handle.type is ObjectType.LOCKS:
            return {}
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=self.lock_days)
        return {"ObjectLockMode": self.lock_mode, "ObjectLockRetainUntilDate": until}

    # The contract.

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        key = self._key(handle)
        what = f"saving {handle}"
        if len(data) <= self.part_size:
            self._call(what, "put_object", Bucket=self.bucket, Key=key, Body=bytes(data),
                       **self._lock_parameters(handle), **self._integrity(data))
            return
        self._save_multipart(handle, key, data, what)

    def _save_multipart(self, handle: Handle, key: str, data: bytes | bytearray | memoryview, what: str) -> None:
        """Upload ``data`` in parts of ``part_size``; abort the upload on any failure."""
        parameters: dict[str, Any] = {"Bucket": self.bucket, "Key": key, **self._lock_parameters(handle)}
        if self.checksums:
            parameters["ChecksumAlgorithm"] = "SHA256"
        upload = self._call(what, "create_multipart_upload", **parameters)
        upload_id = upload["UploadId"]
        parts = []
        try:
            view = memoryview(data)
            for number, start in enumerate(range(0, len(view), self.part_size), start=1):
                part = view[start:start + self.part_size]
                extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"} if self.checksums else {}
                answer = self._call(f"{what} (part {number})", "upload_part", Bucket=self.bucket, Key=key,
                                    UploadId=upload_id, PartNumber=number, Body=bytes(part), **extra)
                record = {"PartNumber": number, "ETag": answer["ETag"]}
                if self.checksums and answer.get("ChecksumSHA256"):
                    record["ChecksumSHA256"] = answer["ChecksumSHA256"]
                parts.append(record)
            self._call(what, "complete_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id,
                       MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the store expires abandoned uploads (lifecycle rule)
                log.warning("could not abort the multipart upload of %s", handle)
            raise

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise PermanentStorageError(f"loading {handle}: negative offset or length")
        what = f"loading {handle}"
        parameters: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(handle)}
        if length == 0:
            self.stat(handle)
            return b""
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            parameters["Range"] = f"bytes={offset}-{end}"
        elif self.checksums:
            parameters["ChecksumMode"] = "ENABLED"
        try:
            answer = self.client.get_object(**parameters)
            body = answer["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        except botocore.exceptions.ClientError as error:
            code, status = _error_code(error)
            if status == 416 or code == "InvalidRange":
                self.stat(handle)  # a range past the end of an existing object is empty
                return b""
            raise translate(error, what) from None
        except Exception as error:
            raise translate(error, what) from None
        if length is not None and len(data) > length:
            # A store that ignores Range sends the whole object.
            data = data[offset:offset + length] if "ContentRange" not in answer else data[:length]
        elif "Range" in parameters and "ContentRange" not in answer and offset:
            data = data[offset:]
        return data

    def stat(self, handle: Handle) -> ObjectInfo:
        answer = self._call(f"stat {handle}", "head_object", Bucket=self.bucket, Key=self._key(handle))
        return ObjectInfo(handle, int(answer["ContentLength"]))

    def list(self, object_type: ObjectType) -> Iterator[ObjectInfo]:
        prefix = f"{self.prefix}/{object_type.value}/" if self.prefix else f"{object_type.value}/"
        found: list[ObjectInfo] = []
        token: str | None = None
        while True:
            parameters: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000}
            if token:
                parameters["ContinuationToken"] = token
            page = self._call(f"listing {object_type.value}/", "list_objects_v2", **parameters)
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix):]
                if "/" in name:
                    continue
                try:
                    found.append(ObjectInfo(Handle(object_type, name), int(item["Size"])))
                except PermanentStorageError:
                    continue  # a foreign key: not an object
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        return iter(found)

    def _remove_key(self, key: str, what: str) -> None:
        """Delete ``key``; in a versioned bucket every version of it (a retained version refuses)."""
        answer = self._call(what, "head_object", Bucket=self.bucket, Key=key)
        if not self._versioned:
            self._call(what, "delete_object", Bucket=self.bucket, Key=key)
            return
        versions = self._call(what, "list_object_versions", Bucket=self.bucket, Prefix=key)
        ids = [v["VersionId"] for v in versions.get("Versions", []) + versions.get("DeleteMarkers", [])
               if v["Key"] == key and v.get("VersionId")]
        if not ids and answer.get("VersionId"):
            ids = [answer["VersionId"]]
        for version in ids:
            self._call(what, "delete_object", Bucket=self.bucket, Key=key, VersionId=version)

    def remove(self, handle: Handle) -> None:
        self._remove_key(self._key(handle), f"removing {handle}")

    def close(self) -> None:
        self.client.close()
