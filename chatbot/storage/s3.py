"""The S3 Store: one object per key under s3://bucket/prefix, through boto3."""

import threading

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from .base import CHUNK_BYTES, Conflict, StorageUnavailable, Store, check_key

# Fail within seconds when S3 is down, rather than holding a worker thread.
CLIENT_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"mode": "standard", "max_attempts": 3},
)
# A health check answers within seconds: one attempt, short timeouts.
PING_CONFIG = Config(connect_timeout=2, read_timeout=2, retries={"mode": "standard", "max_attempts": 1})
NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
# What to fix, for the answers a misconfigured deployment gets; safe to show (no names, no keys).
HINTS = {
    "NoSuchBucket": "the bucket does not exist: fix STORAGE_URL, or create it with `flask storage init`",
    "InvalidAccessKeyId": "the AWS access key is unknown: fix AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "the AWS secret key is wrong: fix AWS_SECRET_ACCESS_KEY",
    "AccessDenied": "access denied: the credentials' IAM policy must allow this bucket and prefix (see README)",
    "403": "access denied: the credentials' IAM policy must allow this bucket and prefix (see README)",
    "PermanentRedirect": "the bucket is in another region: fix AWS_DEFAULT_REGION",
    "AuthorizationHeaderMalformed": "the bucket is in another region: fix AWS_DEFAULT_REGION",
}
CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}


class S3Store(Store):
    """Objects in one bucket under a prefix; conditional writes with IfMatch / IfNoneMatch."""

    def __init__(self, bucket, prefix="", endpoint_url=None):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}"
        self._clients = {}  # botocore Config -> boto3 client
        self._lock = threading.Lock()

    @property
    def client(self):
        """The boto3 client, created once; boto3 clients are safe to share across threads."""
        return self._client_with(CLIENT_CONFIG)

    def _client_with(self, config):
        """A boto3 client with config, created once per config (the store's, and the health check's)."""
        client = self._clients.get(config)
        if client is None:
            with self._lock:
                client = self._clients.get(config)
                if client is None:
                    client = boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, config=config)
                    self._clients[config] = client
        return client

    def _key(self, key):
        return self.prefix + check_key(key)

    def _call(self, operation, **params):
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **params)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in NOT_FOUND:
                return None
            if code in CONFLICT:
                raise Conflict(params.get("Key", "")) from error
            raise StorageUnavailable(f"S3 {operation} failed: {code or error}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"S3 {operation} failed: {error}") from error

    def read(self, key):
        """Return (data, etag) or None."""
        response = self._call("get_object", Key=self._key(key))
        if response is None:
            return None
        try:
            data = response["Body"].read()
        except BotoCoreError as error:
            raise StorageUnavailable(f"S3 read failed: {error}") from error
        return data, response["ETag"]

    def read_chunks(self, key, chunk_size=CHUNK_BYTES):
        """Return (ContentLength, the object's body in chunks, read from S3 as they are asked for) or None."""
        response = self._call("get_object", Key=self._key(key))
        if response is None:
            return None
        return response["ContentLength"], _chunks(response["Body"], chunk_size)

    def write(self, key, data, *, version=None, create=False):
        """put_object with IfMatch=version or IfNoneMatch='*'."""
        conditions = {}
        if version is not None:
            conditions["IfMatch"] = version
        elif create:
            conditions["IfNoneMatch"] = "*"
        response = self._call("put_object", Key=self._key(key), Body=data, ContentType="application/json", **conditions)
        if response is None:  # a 404 on a conditional put: the object went away meanwhile
            raise Conflict(key)
        return response["ETag"]

    def delete(self, key):
        """delete_object; S3 treats a missing key as success."""
        self._call("delete_object", Key=self._key(key))

    def create_bucket(self):
        """Create the bucket; return False when it already exists and is ours."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in NOT_FOUND:
                raise StorageUnavailable(f"S3 head_bucket failed: {error}") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"S3 head_bucket failed: {error}") from error
        region = self.client.meta.region_name
        location = (
            {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        self._call("create_bucket", **location)
        return True

    def keys(self, prefix=""):
        """Yield keys under prefix, without this store's own prefix."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(f"S3 list failed: {error}") from error

    def ping(self):
        """Read a missing probe key within seconds; raise StorageUnavailable saying what to fix."""
        try:
            self._client_with(PING_CONFIG).get_object(Bucket=self.bucket, Key=self._key("probe/ready.json"))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in NOT_FOUND:
                return  # reachable, and the credentials may read here
            hint = HINTS.get(code)
            raise StorageUnavailable(f"{hint} ({code})" if hint else f"S3 answered {code or 'an error'}") from error
        except NoCredentialsError as error:
            raise StorageUnavailable("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from error
        except BotoCoreError as error:
            raise StorageUnavailable("S3 cannot be reached (network, or AWS_ENDPOINT_URL)") from error


def _chunks(body, chunk_size):
    """A GetObject body chunk_size at a time; its connection goes back to the pool at the end, or when the
    reader stops early (the rest is not read)."""
    try:
        yield from body.iter_chunks(chunk_size)
    except BotoCoreError as error:
        raise StorageUnavailable(f"S3 read failed: {error}") from error
    finally:
        body.close()
