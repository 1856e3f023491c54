"""Command line: ``socle serve | ingest | db | users | groups | roles | keys | secrets | quotas | models |
usage``, and each installed app's commands (``socle <app> …``)."""
from __future__ import annotations

import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import httpx
import typer
import uvicorn
from rich.markup import escape
from rich.table import Table
from uvicorn.supervisors import Multiprocess

from socle import console as console_
from socle import logs
from socle.apps import installed_apps
from socle.db.models import utcnow
from socle.errors import SocleError
from socle.identity.keys import PREFIX, new_key
from socle.identity.permissions import SYSTEM
from socle.platform import Platform
from socle.settings import Settings, get_settings
from socle.usage.service import UsageFilter

app = typer.Typer(help="Socle IA: sovereign generative-AI platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Users.", no_args_is_help=True)
groups_app = typer.Typer(help="Groups.", no_args_is_help=True)
roles_app = typer.Typer(help="Roles and their permissions.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
quotas_app = typer.Typer(help="Rate limits and budgets.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(groups_app, name="groups")
app.add_typer(roles_app, name="roles")
app.add_typer(keys_app, name="keys")
app.add_typer(quotas_app, name="quotas")
audit_app = typer.Typer(help="The audit trail: check its chain, export it.", no_args_is_help=True)
compliance_app = typer.Typer(help="Personal data (GDPR): the register of processing activities...",
                             no_args_is_help=True)
secrets_app = typer.Typer(help="Secrets kept encrypted in the database (SOCLE_ENCRYPTION_KEYS).", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")
app.add_typer(audit_app, name="audit")
app.add_typer(compliance_app, name="compliance")

T = TypeVar("T")
console, err = console_.console, console_.err


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="Default: SOCLE_HOST")] = None,
          port: Annotated[int | None, typer.Option(help="Default: SOCLE_PORT")] = None,
          workers: Annotated[int | None, typer.Option(help="Default: SOCLE_WORKERS")] = None) -> None:
    """Prepare the database and the first admin (or wait for the schema), then serve the platform; on SIGTERM,
    finish the requests in flight (SOCLE_SHUTDOWN_GRACE_S at most) and stop."""
    settings = console_.settings()
    console_.prepare(settings)
    workers = workers or settings.workers
    if workers > 1:  # metrics summed over the worker processes
        metrics_dir = settings.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    config = uvicorn.Config("socle.app:create_app", factory=True, host=host or settings.host,
                            port=port or settings.port, workers=workers, backlog=settings.backlog,
                            log_level=settings.log_level, proxy_headers=False, server_header=False,
                            log_config=logs.config(kind=settings.log_format, level=settings.log_level,
                                                   static=settings.log_static),
                            timeout_graceful_shutdown=settings.shutdown_grace_s,
                            # a worker answers the supervisor once its imports are done: on a loaded machine that
                            # takes more than uvicorn's 5 s, and the supervisor would kill it, again and again
                            timeout_worker_healthcheck=30)
    if workers > 1:
        _Supervisor(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()


class _Supervisor(Multiprocess):
    """uvicorn's supervisor of worker processes, which closes its copy of the listening socket when a stop
    begins. Otherwise the kernel keeps accepting connections that no draining worker will take, and resets them
    when the supervisor exits: a reverse proxy that already sent them a POST does not retry it (a rolling
    restart lost 62 of 14,879 calls that way, 1 with this; bench/README.md, "production topology"). Refused
    outright, the connections go to another replica."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


@app.command()
def worker(pool: Annotated[list[str] | None, typer.Option(
        "--pool", help="Run only this job pool (repeat for several); default: every pool")] = None) -> None:
    """Run the job pools (document ingestion, retention, the apps' jobs) apart from the API; on SIGTERM, take no
    new job, let the running ones finish (SOCLE_SHUTDOWN_GRACE_S at most) and hand the others back."""
    import asyncio

    from socle.app import create_probe_app
    from socle.jobs.process import UnknownPool, run_worker

    settings = console_.settings()
    console_.prepare(settings, bootstrap=False)
    logs.configure(kind=settings.log_format, level=settings.log_level, static=settings.log_static)
    try:
        asyncio.run(run_worker(settings, pool or [], probes=create_probe_app))
    except UnknownPool as exc:
        err.print(f"[bold red]Error:[/] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def ingest(paths: Annotated[list[Path], typer.Argument(help="Files and folders (searched recursively)", exists=True)],
           collection: Annotated[str, typer.Option("--collection", "-c", help="Name of your collection")],
           url: Annotated[str | None, typer.Option(help="The platform's URL; default: this host's SOCLE_PORT")] = None,
           api_key: Annotated[str | None, typer.Option(envvar="SOCLE_API_KEY", help="Default: data/admin.key",
                                                       show_default=False)] = None,
           create: Annotated[bool, typer.Option(help="Create the collection if you have none of that name")] = True,
           visibility: Annotated[str, typer.Option(help="Of a created collection: private, group or public")]
           = "private",
           group_id: Annotated[int | None, typer.Option(help="Of a created group collection")] = None,
           chunk_size: int = 2048, chunk_overlap: int = 200,
           wait: Annotated[bool, typer.Option(help="Wait until every document is ingested")] = True) -> None:
    """Upload documents into a collection through the API, with progress; run it again to resume."""
    from socle.client.ingest import Ingester

    settings = get_settings()
    key = api_key or (settings.admin_key_file.read_text().strip() if settings.admin_key_file.exists() else None)
    if not key:
        err.print("[bold red]No API key:[/] give --api-key or set SOCLE_API_KEY.")
        raise typer.Exit(2)
    ingester = Ingester(url or f"http://{settings.host}:{settings.port}", key)
    try:
        collection_id = ingester.collection(collection, create=create, visibility=visibility, group_id=group_id)
        outcome = ingester.ingest(paths, collection_id, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                                  wait=wait, console=console)
    except (RuntimeError, httpx.HTTPError) as exc:
        err.print(f"[bold red]Error:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        ingester.close()
    states = [d["status"] for d in outcome.documents.values()]
    console.print(f"Collection {collection!r} (id {collection_id}): {outcome.uploaded} sent, "
                  f"{outcome.skipped} already there; {states.count('ready')} ready, {len(outcome.failed)} failed.")
    for document in outcome.failed:
        console.print(f"  [red]failed[/] {document['name']}: {document['error']}")
    if outcome.left_out:
        console.print(f"{len(outcome.left_out)} file(s) skipped:")
    for path, reason in outcome.left_out:
        console.print(f"  [yellow]skipped[/] {escape(str(path))}: {escape(reason)}", highlight=False, soft_wrap=True)
    if outcome.failed:
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the migrations up to REVISION under the database's migration lock, then create the first admin if
    there is none (safe to run again, and from several places at once: the migrations job)."""
    settings = console_.settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    console_.upgrade(settings, revision)
    console.print(f"Database at revision {revision}.")


@app.command()
def usage(by: Annotated[str, typer.Option(help="Comma-separated: day, model, user, key, endpoint, status")] = "day",
          email: Annotated[str | None, typer.Option("--user", help="Only this user's calls")] = None,
          model: str | None = None,
          days: Annotated[int, typer.Option(min=1, help="Over the last N days")] = 30) -> None:
    """Requests, tokens, cost, energy and carbon, summed."""
    groups = [g.strip() for g in by.split(",") if g.strip()]

    async def action(p: Platform) -> list[dict[str, object]]:
        user_id = (await p.identity.find_user(SYSTEM, email)).id if email else None
        filters = UsageFilter(user_id=user_id, model=model, since=utcnow() - timedelta(days=days))
        return await p.usage.totals(SYSTEM, filters, groups)  # type: ignore[arg-type]

    rows = console_.with_platform(action)
    currency = console_.settings().currency
    table = Table(*groups, "requests", "prompt tokens", "completion tokens", f"cost ({currency})", "energy (kWh)",
                  "CO2 (kg)", "avg latency (ms)", title=f"Usage over the last {days} days")
    for row in rows:
        table.add_row(*(str(row[g]) for g in groups), str(row["requests"]), str(row["prompt_tokens"]),
                      str(row["completion_tokens"]), f"{row['cost']:.4f}", f"{row['energy_kwh']:.6f}",
                      f"{row['co2_kg']:.6f}", f"{row['avg_latency_ms'] or 0:.1f}")
    console.print(table)


@app.command()
def models(verify: Annotated[bool, typer.Option("--verify", help="Check each model file against the manifest "
                                                "of the data directory; exit 1 if one changed")] = False,
           record: Annotated[bool, typer.Option("--record", help="Record each model file's checksum as it is "
                                                "now (after replacing a file on purpose)")] = False) -> None:
    """The models of the catalogue and where each is served (by its public label and its address)."""
    settings = console_.settings()
    if verify or record:
        _model_files(settings, record=record)
        return
    table = Table("id", "type", "routing", "backends")
    for model in settings.catalogue().models:
        backends = ", ".join(f"{model.backend_label(i)} ({getattr(b, 'url', None) or b.type})"
                             for i, b in enumerate(model.backends))
        table.add_row(model.id, model.type, model.routing, backends)
    console.print(table)


def _model_files(settings: Settings, *, record: bool) -> None:
    from socle.inference.manifest import ModelFileChanged, ModelManifest
    from socle.inference.registry import ModelRegistry

    manifest = ModelManifest.in_data_dir(settings.data_dir)
    try:
        files = ModelRegistry(settings.catalogue()).model_files()
        checks = manifest.record(files) if record else manifest.verify(files)
    except (ModelFileChanged, SocleError, OSError) as exc:
        err.print(f"[bold red]Error:[/] {getattr(exc, 'message', exc)}")
        raise typer.Exit(1) from exc
    table = Table("file", "sha256", "status", title=str(manifest.path))
    for check in checks:
        table.add_row(str(check.path), check.sha256, "recorded" if record else check.status)
    console.print(table)
    changed = [check for check in checks if check.status == "changed" and not record]
    if changed:
        err.print(f"[bold red]{len(changed)} model file(s) changed since they were recorded[/]: the server "
                  "refuses to load them. If the change is intended: socle models --record")
        raise typer.Exit(1)


# ---- users and groups --------------------------------------------------------------------------------

@users_app.command("create")
def users_create(email: str, name: str = "", role: str = "user",
                 group: Annotated[list[str] | None, typer.Option(help="Repeat for several groups")] = None) -> None:
    user = console_.with_platform(lambda p: p.identity.create_user(SYSTEM, email=email, name=name, role=role,
                                                            groups=group or []))
    console.print(f"User {user.id} created: {user.email} ({user.role.name}).")


@users_app.command("list")
def users_list() -> None:
    table = Table("id", "email", "name", "role", "groups", "active")
    for user in console_.with_platform(lambda p: p.identity.list_users(SYSTEM, limit=100_000)):
        table.add_row(str(user.id), user.email, user.name, user.role.name,
                      ", ".join(g.name for g in user.groups), "yes" if user.is_active else "no")
    console.print(table)


@users_app.command("update")
def users_update(email: str, role: str | None = None, name: str | None = None,
                 active: Annotated[bool | None, typer.Option("--active/--inactive")] = None) -> None:
    async def action(p: Platform) -> None:
        user = await p.identity.find_user(SYSTEM, email)
        await p.identity.update_user(SYSTEM, user.id, role=role, name=name, is_active=active)

    console_.with_platform(action)
    console.print(f"User {email} updated.")


@users_app.command("set-password")
def users_set_password(email: str,
                       password_stdin: Annotated[bool, typer.Option(
                           "--password-stdin", help="Read the password from the first line of standard input "
                           "(scripts); otherwise it is asked twice, hidden")] = False) -> None:
    """Set the password a user signs in to the web UI with; their open web sessions end."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def action(p: Platform) -> None:
        await p.identity.set_password(SYSTEM, (await p.identity.find_user(SYSTEM, email)).id, password)

    console_.with_platform(action)
    console.print(f"Password of {email} set.")


@users_app.command("delete")
def users_delete(email: str) -> None:
    """Erase a user and everything about them; their usage rows stay, pseudonymised (see README)."""
    async def action(p: Platform) -> None:
        await p.erasure.erase_user(SYSTEM, (await p.identity.find_user(SYSTEM, email)).id)

    console_.with_platform(action)
    console.print(f"User {email} deleted.")


@users_app.command("export")
def users_export(email: str, out: Annotated[Path, typer.Option("--out", help="The ZIP archive to write")]) -> None:
    """Everything the platform holds about a user, as one ZIP archive (GDPR access and portability)."""
    async def action(p: Platform) -> None:
        user = await p.identity.find_user(SYSTEM, email)
        out.touch(mode=0o600)  # personal data: readable by its owner only
        await p.exports.write(SYSTEM, user.id, out)

    console_.with_platform(action)
    console.print(f"Data of {email} written to {out}.")


@groups_app.command("create")
def groups_create(name: str, description: str = "") -> None:
    group = console_.with_platform(lambda p: p.identity.create_group(SYSTEM, name=name, description=description))
    console.print(f"Group {group.id} created: {group.name}.")


@groups_app.command("list")
def groups_list() -> None:
    table = Table("id", "name", "description", "members")
    for group in console_.with_platform(lambda p: p.identity.list_groups(SYSTEM)):
        table.add_row(str(group.id), group.name, group.description, str(len(group.members)))
    console.print(table)


# ---- roles -----------------------------------------------------------------------------------------

@roles_app.command("list")
def roles_list() -> None:
    table = Table("id", "name", "permissions", "built-in")
    for role in console_.with_platform(lambda p: p.identity.list_roles(SYSTEM)):
        table.add_row(str(role.id), role.name, " ".join(role.permissions), "yes" if role.builtin else "")
    console.print(table)


@roles_app.command("create")
def roles_create(name: str, permission: Annotated[list[str], typer.Option(help="Repeat for each permission")],
                 description: str = "") -> None:
    role = console_.with_platform(lambda p: p.identity.create_role(SYSTEM, name=name, permissions=permission,
                                                            description=description))
    console.print(f"Role {role.id} created: {role.name}.")


# ---- secrets ---------------------------------------------------------------------------------------

@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Encrypt every stored secret (backend keys, ProConnect's client secret) again with the first key of
    SOCLE_ENCRYPTION_KEYS: run it after putting a new key first; then the old one can be dropped."""
    from socle.audit.service import Action
    from socle.inference.sealing import SealingUnavailable

    async def action(p: Platform) -> tuple[int, int]:
        try:
            counts = await p.models.reseal(), await p.site.reseal()
        except SealingUnavailable as exc:
            err.print(f"[bold red]Error:[/] {exc}")
            raise typer.Exit(1) from exc
        await p.audit.record(Action.SECRETS_RESEALED, details={"backend_keys": counts[0], "proconnect": counts[1]})
        return counts

    backends, proconnect = console_.with_platform(action)
    console.print(f"Encrypted again with the first key: {backends} backend key(s), {proconnect} ProConnect "
                  "client secret(s).", soft_wrap=True)


# ---- keys ------------------------------------------------------------------------------------------

@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key of the platform's form, stored nowhere: a secret for SOCLE_ADMIN_API_KEY."""
    console.print(new_key()[0], soft_wrap=True, highlight=False)


@keys_app.command("create")
def keys_create(email: Annotated[str, typer.Option("--user", help="Owner's e-mail")], name: str = "",
                expires_days: Annotated[int | None, typer.Option(min=1)] = None) -> None:
    """Create a key; it is printed once and cannot be recovered later."""
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None

    async def action(p: Platform) -> str:
        user = await p.identity.find_user(SYSTEM, email)
        return (await p.identity.create_key(SYSTEM, name=name, user_id=user.id, expires_at=expires_at)).secret

    console.print(console_.with_platform(action), soft_wrap=True, highlight=False)


@keys_app.command("list")
def keys_list(email: Annotated[str | None, typer.Option("--user")] = None) -> None:
    async def action(p: Platform) -> list:  # type: ignore[type-arg]
        user_id = (await p.identity.find_user(SYSTEM, email)).id if email else None
        return await p.identity.list_keys(SYSTEM, user_id=user_id)

    table = Table("id", "prefix", "name", "user", "created", "expires", "revoked")
    for key in console_.with_platform(action):
        table.add_row(str(key.id), PREFIX + key.public_id, key.name, key.user.email, f"{key.created_at:%Y-%m-%d}",
                      f"{key.expires_at:%Y-%m-%d}" if key.expires_at else "",
                      f"{key.revoked_at:%Y-%m-%d}" if key.revoked_at else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: int) -> None:
    console_.with_platform(lambda p: p.identity.revoke_key(SYSTEM, key_id))
    console.print(f"Key {key_id} revoked.")


# ---- quotas ----------------------------------------------------------------------------------------

_QUOTA_LIMITS = ("requests_per_minute", "requests_per_day", "tokens_per_minute", "budget_tokens", "budget_cost")


@quotas_app.command("list")
def quotas_list() -> None:
    table = Table("id", "scope", "subject", "model", "rpm", "rpd", "tpm", "budget tokens", "budget cost", "period")
    for quota in console_.with_platform(lambda p: p.quotas.list(SYSTEM)):
        table.add_row(str(quota.id), quota.scope, quota.subject, quota.model or "(all)",
                      *(("" if getattr(quota, name) is None else str(getattr(quota, name))) for name in _QUOTA_LIMITS),
                      quota.budget_period)
    console.print(table)


@quotas_app.command("create")
def quotas_create(
        scope: Annotated[str, typer.Argument(help="key, user, group, role or global")],
        subject: Annotated[str, typer.Argument(help="The key, user or group id, the role name; '' for global")] = "",
        model: Annotated[str | None, typer.Option(help="Only this model (default: every model together)")] = None,
        rpm: Annotated[int | None, typer.Option(help="Requests per minute")] = None,
        rpd: Annotated[int | None, typer.Option(help="Requests per day")] = None,
        tpm: Annotated[int | None, typer.Option(help="Tokens per minute")] = None,
        budget_tokens: Annotated[int | None, typer.Option(help="Tokens per period")] = None,
        budget_cost: Annotated[float | None, typer.Option(help="Cost per period")] = None,
        period: Annotated[str, typer.Option(help="day or month")] = "month") -> None:
    quota = console_.with_platform(lambda p: p.quotas.create(
        SYSTEM, scope=scope, subject=subject, model=model, requests_per_minute=rpm, requests_per_day=rpd,
        tokens_per_minute=tpm, budget_tokens=budget_tokens, budget_cost=budget_cost, budget_period=period))
    console.print(f"Quota {quota.id} created.")


@quotas_app.command("delete")
def quotas_delete(quota_id: int) -> None:
    console_.with_platform(lambda p: p.quotas.delete(SYSTEM, quota_id))
    console.print(f"Quota {quota_id} deleted.")


# ---- audit trail and register of processing activities ----------------------------------------------

@audit_app.command("verify")
def audit_verify(head: Annotated[str | None, typer.Option(help="A head hash printed by an earlier verification "
                                                          "(kept elsewhere): fails if that entry is gone")] = None
                 ) -> None:
    """Check every entry's hash and its link to the one before; exit 1 naming the first entry that fails."""
    result = console_.with_platform(lambda p: p.audit.verify(expected_head=head))
    if result.broken_id is not None:
        err.print(f"[bold red]Audit trail broken[/] at entry {result.broken_id}: {result.reason} "
                  f"({result.broken} entr{'y' if result.broken == 1 else 'ies'} of {result.entries} fail).")
        raise typer.Exit(1)
    if result.head_found is False:
        err.print(f"[bold red]Audit trail cut short:[/] no entry has the hash {head} any more.")
        raise typer.Exit(1)
    console.print(f"Audit trail intact: {result.entries} entries. Head: {result.head}")


@audit_app.command("export")
def audit_export(output: Annotated[Path | None, typer.Option("--output", "-o", help="Default: standard output")]
                 = None,
                 action: Annotated[str | None, typer.Option(help="An action (key.created) or a family (key.)")]
                 = None,
                 days: Annotated[int | None, typer.Option(min=1, help="Only the last N days")] = None) -> None:
    """The audit trail as CSV, oldest first (names resolved now; deleted accounts by number)."""
    from socle.audit.exports import csv_chunks
    from socle.audit.store import AuditFilter

    filters = AuditFilter(action=action, since=utcnow() - timedelta(days=days) if days else None)

    async def action_(p: Platform) -> None:
        handle = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            async for chunk in csv_chunks(await p.audit.export(SYSTEM, filters)):
                handle.write(chunk)
        finally:
            if output:
                handle.close()

    console_.with_platform(action_)


@compliance_app.command("register")
def compliance_register(
        format: Annotated[str, typer.Option("--format", help="markdown or json")] = "markdown",
        controller: Annotated[str, typer.Option(help="The controller (the administration) named at the top")] = ""
) -> None:
    """The register of processing activities (GDPR art. 30), from this installation's configuration."""
    from socle.compliance import register

    if format not in ("markdown", "json"):
        err.print("[bold red]Error:[/] --format is markdown or json.")
        raise typer.Exit(2)
    async def action_(p: Platform) -> register.Register:
        site = await p.site.current()
        return register.build(p.settings, p.personal_data, controller=controller, chosen=site.retention_days,
                              proconnect=site.proconnect is not None)

    built = console_.with_platform(action_)
    sys.stdout.write((built.as_json() if format == "json" else register.as_markdown(built)) + "\n")




# ---- backups ---------------------------------------------------------------------------------------

@app.command()
def backup(out: Annotated[Path, typer.Argument(help="The archive to write (.tar.gz); must not exist")]) -> None:
    """Back up the database and the uploaded documents into one archive, while the platform serves."""
    from socle import backup as backups

    try:
        manifest = backups.backup(console_.settings(), out)
    except backups.BackupError as exc:
        err.print(f"[bold red]Backup failed:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"Backup written to {out}: {manifest['database']} database at revision "
                  f"{', '.join(manifest['alembic_revisions'])}, {len(manifest['files'])} files.")


@app.command()
def restore(archive: Annotated[Path, typer.Argument(help="An archive written by 'socle backup'")],
            force: Annotated[bool, typer.Option("--force", help="Replace the data and database there are "
                                                "(stop the platform first)")] = False) -> None:
    """Restore an archive into this platform's data directory and database, then migrate to the current
    schema; refused when they hold data, unless --force."""
    from socle import backup as backups

    try:
        manifest = backups.restore(console_.settings(), archive, force=force)
    except backups.BackupError as exc:
        err.print(f"[bold red]Restore refused:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"Restored {archive} (made {manifest['created_at']} by version {manifest['platform_version']}); "
                  "schema migrated to the current version.")



def _add_apps() -> None:
    for installed in installed_apps():
        commands = installed.cli()
        if commands is not None:
            app.add_typer(commands, name=installed.name)


_add_apps()


if __name__ == "__main__":
    app()
