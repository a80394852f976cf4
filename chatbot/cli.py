"""Operator commands: `flask storage|models|users|guests ...`, `flask usage`, `flask release-check`."""

import secrets

import click
from flask import current_app
from flask.cli import with_appcontext

from . import userdata
from .conversations import is_valid_id
from .llm import get_llm
from .llm.base import IMAGE_TEXT_TO_TEXT
from .storage import StorageError, get_store, open_store


@click.group("storage")
def storage_cli():
    """Manage the conversation store (STORAGE_URL)."""


@storage_cli.command("check")
@with_appcontext
def check():
    """Write, read back and delete a probe object; print a verdict."""
    store = get_store()
    click.echo(f"Checking {store.url} ...")
    check_store(store)
    click.echo("OK: the store can be written, read and deleted.")


def check_store(store):
    """Ping, then write, read back and delete a probe object; raise ClickException naming the failure."""
    try:
        store.ping()  # first, for its hint of what to fix
    except StorageError as error:
        raise click.ClickException(f"storage check failed for {store.url}: {error}") from None
    key = f"probe/{secrets.token_hex(8)}.json"
    try:
        store.write(key, b'{"probe": true}')
        found = store.read(key)
        store.delete(key)
    except StorageError as error:
        cause = error.__cause__ or error
        raise click.ClickException(f"storage check failed for {store.url}: {cause}") from None
    if found is None or found[0] != b'{"probe": true}':
        raise click.ClickException(f"storage check failed for {store.url}: the probe did not read back")


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


@storage_cli.command("migrate")
@with_appcontext
def migrate():
    """Rewrite every stored conversation in the current format now (each a compare-and-swap; safe to run again)."""
    store = get_store()
    click.echo(f"Migrating the conversations in {store.url} ...")
    try:
        rewritten, current, failed = userdata.migrate_conversations(store)
    except StorageError as error:  # the listing itself failed
        raise click.ClickException(f"migrate failed: {error.__cause__ or error}") from None
    for key, reason in failed:
        click.echo(f"Failed: {key}: {reason}", err=True)
    click.echo(f"{rewritten} rewritten, {current} already current, {len(failed)} failed.")
    if failed:
        raise click.ClickException(f"{len(failed)} conversations could not be migrated (listed above)")


@click.group("models")
def models_cli():
    """Check the configured models (CHATBOT_MODELS) against what is served."""


def _check_models():
    """Print each model's status; return the problems that make a release unsafe."""
    backend = get_llm()
    problems = []
    click.echo(f"Backend: {current_app.config['LLM_BACKEND']}" + (" via HF_BASE_URL" if backend.base_url else ""))
    problem = backend.problem()
    if problem and current_app.config["LLM_BACKEND"] == "local":
        problems.append(
            f"replies would come from the local model, which cannot run here ({problem}): "
            "set HF_TOKEN to use Hugging Face"
        )
    elif problem:
        problems.append(problem)
    token_problem = backend.check_token()
    if token_problem:
        problems.append(token_problem)
    statuses = backend.check_models()
    _print_statuses(statuses, current_app.config["VISION_MODELS"])
    served = [status.model for status in statuses if status.served]
    if not served:
        unknown = [status.detail for status in statuses if status.served is None]
        problems.append(
            unknown[0]
            if unknown
            else "no configured model is served: set CHATBOT_MODELS to models that are (see above)"
        )
    elif statuses[0].served is not True:
        click.echo(
            f"The default model will be {served[0]} (the first served); "
            "the models not served are marked unavailable in the picker."
        )
    return problems


def _print_statuses(statuses, vision_models):
    """A line a model: served or not, by whom, and its pipeline_tag on the Hub; then which models see images."""
    width = max(len(status.model) for status in statuses)
    hub_sees = {status.model for status in statuses if status.pipeline_tag == IMAGE_TEXT_TO_TEXT}
    for status in statuses:
        mark = {True: "ok", False: "NOT SERVED", None: "UNKNOWN"}[status.served]
        via = f"via {', '.join(status.providers)}" if status.served else status.detail
        task = f"; pipeline_tag {status.pipeline_tag}" if status.pipeline_tag else ""
        click.echo(f"  {status.model:<{width}}  {mark:<10}  {via}{task}")
    seeing = [_sees_images(status, hub_sees) for status in statuses if status.model in hub_sees | set(vision_models)]
    click.echo(f"Sent images: {', '.join(seeing)}." if seeing else "Sent images: none of these models.")


def _sees_images(status, hub_sees):
    """A model sent images, and why when the Hub did not say it sees them."""
    if status.model in hub_sees:
        return status.model
    hub = f"; the Hub says {status.pipeline_tag}" if status.pipeline_tag else ""
    return f"{status.model} (VISION_MODELS{hub})"


@models_cli.command("check")
@click.option("--strict", is_flag=True, help="Fail (exit 1) when no model can be used or the token is refused.")
@with_appcontext
def models_check(strict):
    """Print, for each configured model, whether it can be used and through which providers."""
    problems = _check_models()
    for problem in problems:
        click.echo(f"Problem: {problem}", err=True)
    if problems and strict:
        raise click.ClickException("the model configuration cannot serve replies: " + "; ".join(problems))
    if not problems:
        click.echo("OK: replies can be served.")


@click.command("release-check")
@with_appcontext
def release_check():
    """Run before a release: the store can be written and read, and a configured model is served."""
    store = get_store()
    click.echo(f"Storage: {store.url}")
    check_store(store)
    problems = _check_models()
    if problems:
        raise click.ClickException("models: " + "; ".join(problems))
    click.echo("Release check passed.")


@click.group("users")
def users_cli():
    """Accounts: list them, delete one with its conversations."""


@users_cli.command("list")
@with_appcontext
def users_list():
    """List accounts: username, created, conversations."""
    store = get_store()
    found = userdata.accounts(store)
    for entry in found:
        count = len(userdata.user_index(store, entry["uid"])) if is_valid_id(entry["uid"]) else 0
        click.echo(f"{entry['username']:<32}  created {entry['created_at'] or '?':<29}  {count} conversations")
    click.echo(f"{len(found)} accounts.")


@users_cli.command("delete")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def users_delete(username, yes):
    """Delete the account USERNAME and all its conversations."""
    store = get_store()
    found = userdata.account(store, username)
    if found is None:
        raise click.ClickException(f"no account named {username!r}")
    count = len(userdata.conversation_keys(store, found["uid"]))
    if not yes:
        click.confirm(
            f"Delete the account {username!r} and its {count} conversations? This cannot be undone", abort=True
        )
    deleted = userdata.delete_account(store, username)
    click.echo(f"Deleted the account {username!r} and {deleted} conversations.")


@click.group("guests")
def guests_cli():
    """Guests: conversations of visitors without an account."""


@guests_cli.command("purge")
@click.option(
    "--older-than",
    "older_than",
    default="30d",
    show_default=True,
    help="Age of a guest's newest conversation: 30d, 12h, 90m.",
)
@click.option("--yes", "--delete", "delete", is_flag=True, help="Delete (without it, only list what would go).")
@with_appcontext
def guests_purge(older_than, delete):
    """Delete guests whose newest conversation is older than --older-than; a dry run without --yes."""
    try:
        age = userdata.parse_age(older_than)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    store = get_store()
    stale = userdata.stale_guests(store, age)
    for guest in stale:
        verb = "deleting" if delete else "would delete"
        click.echo(
            f"{verb} guest {guest['uid']}: {guest['conversations']} conversations, "
            f"last active {guest['last_active'] or 'never'}"
        )
        if delete:
            userdata.delete_user_data(store, guest["uid"])
    if delete:
        click.echo(f"Deleted {len(stale)} guests.")
    else:
        click.echo(f"Dry run: {len(stale)} guests older than {older_than} would be deleted. Add --yes to delete.")


@click.command("usage")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 366), help="How many days back.")
@with_appcontext
def usage(days):
    """Messages, replies and active users per day, counted from storage."""
    rows = userdata.usage(get_store(), days)
    click.echo(f"{'day':<10}  {'messages':>8}  {'replies':>8}  {'users':>6}")
    for row in rows:
        click.echo(f"{row['day']:<10}  {row['messages']:>8}  {row['replies']:>8}  {row['users']:>6}")
    click.echo(f"{'total':<10}  {sum(row['messages'] for row in rows):>8}  {sum(row['replies'] for row in rows):>8}")
