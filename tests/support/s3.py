"""A real S3-protocol server for tests and benchmarks: moto's standalone server over HTTP."""

import subprocess
import urllib.request

import boto3

from chatbot.conversations import new_id

from .servers import BIN, free_port, wait_until_up

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    """moto_server in a subprocess on a free loopback port."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        """Start the server and wait until it answers."""
        moto_server = str(BIN / "moto_server")
        self.process = subprocess.Popen(
            [moto_server, "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until_up(self.url + "/moto-api/", self.process, seconds=30)
        return self

    def stop(self):
        """Stop the server."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def client(self):
        """A plain boto3 client for the server."""
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            **{
                "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
            },
        )

    def reset(self):
        """Forget every bucket and object."""
        urllib.request.urlopen(urllib.request.Request(self.url + "/moto-api/reset", method="POST"), timeout=5)


def new_bucket(s3_server, prefix="chat"):
    """Create a bucket with a fresh valid name (lowercase letters and digits) and return its name."""
    bucket = bucket_name(prefix)
    s3_server.client().create_bucket(Bucket=bucket)
    return bucket


def bucket_name(prefix="chat"):
    """A fresh bucket name that S3 accepts: the prefix, a dash, 16 lowercase letters and digits."""
    return f"{prefix}-" + new_id().lower().replace("_", "a").replace("-", "b")
