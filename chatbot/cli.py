"""`flask storage ...`: check, initialise and copy the conversation store."""

import secrets

import click
from flask.cli import with_appcontext

from .storage import StorageError, get_store, open_store


@click.group("storage")
def storage_cli():
    """Manage the conversation store (STORAGE_URL)."""


@storage_cli.command("check")
@with_appcontext
def check():
    """Write, read back and delete a probe object; print a verdict."""
    store = get_store()
    key = f"probe/{secrets.token_hex(8)}.json"
    click.echo(f"Checking {store.url} ...")
    try:
        store.write(key, b'{"probe": true}')
        found = store.read(key)
        store.delete(key)
    except StorageError as error:
        cause = error.__cause__ or error
        raise click.ClickException(f"storage check failed for {store.url}: {cause}") from None
    if found is None or found[0] != b'{"probe": true}':
        raise click.ClickException(f"storage check failed for {store.url}: the probe did not read back")
    click.echo("OK: the store can be written, read and deleted.")


@storage_cli.command("init")
@with_appcontext
def init():
    """Create the S3 bucket if it does not exist (the app never does this by itself)."""
    store = get_store()
    if not hasattr(store, "create_bucket"):
        click.echo(f"{store.url}: a folder store needs no initialisation.")
        return
    try:
        created = store.create_bucket()
    except StorageError as error:
        raise click.ClickException(f"could not create the bucket: {error.__cause__ or error}") from None
    click.echo(f"Created bucket {store.bucket}." if created else f"Bucket {store.bucket} already exists.")


@storage_cli.command("copy")
@click.argument("source")
@click.argument("destination")
def copy(source, destination):
    """Copy every object from SOURCE to DESTINATION (file:///dir or s3://bucket/prefix)."""
    source_store, destination_store = open_store(source), open_store(destination)
    count = 0
    try:
        for key in source_store.keys():
            data, _ = source_store.read(key)
            destination_store.write(key, data)
            count += 1
    except StorageError as error:
        raise click.ClickException(f"copy failed after {count} objects: {error.__cause__ or error}") from None
    click.echo(f"Copied {count} objects from {source} to {destination}.")

