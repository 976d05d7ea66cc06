"""`tetra notify`: the notification pass on demand (for cron, or to see it work), the outbox's
state, a test message through a configured channel, and the day's digest now."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import TYPE_CHECKING

from server.cli.common import CLIError, add_config_option, on_ca_reading

if TYPE_CHECKING:
    from ca.service import CertificateAuthority
    from server.cli.common import Subcommands
    from server.config import ServerConfig


def _holder() -> str:
    return f"cli:{socket.gethostname()}:{os.getpid()}"


@on_ca_reading
async def notify_run(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    """One pass: plan what is due, then deliver everything due now."""
    from server.notify.operations import run_pass

    result = await run_pass(ca, config.notifications, _holder())
    plan, sent = result.plan, result.sent
    print(f"planned: {plan.due} notice(s) due, {plan.queued} newly queued, {plan.unroutable} without a recipient")
    print(f"delivered: {sent.delivered}, to retry: {sent.failed}, given up: {sent.given_up}")
    return 0


@on_ca_reading
async def notify_status(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from ca.notices.outbox import OutboxStore

    status = await OutboxStore(ca.db).status()
    counts = f"queued: {status.queued}  delivered: {status.delivered}  failing: {status.failing}"
    print(f"{counts}  given up: {status.given_up}")
    for m in status.troubled:
        state = "given up" if m.gave_up_at is not None else "failing"
        print(f"  {state}  #{m.id} {m.channel} {m.recipient}  {m.rule}  attempts {m.attempts}: {m.last_error}")
    return 0


@on_ca_reading
async def notify_test(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from ca.errors import BadRequest
    from server.notify import DeliveryError
    from server.notify.operations import send_test, test_message

    settings = config.notifications
    try:
        message = test_message(settings, ca.clock.now(), email=args.email, webhook=args.webhook)
    except BadRequest as exc:
        option = "--webhook" if args.webhook is not None else "--email"
        raise CLIError(f"{option} {exc.detail}") from None
    try:
        await send_test(settings, message)
    except DeliveryError as exc:
        print(f"tetra: error: {exc}", file=sys.stderr)
        return 1
    print(f"ok: test message delivered by {message.channel} to {message.recipient}")
    return 0


@on_ca_reading
async def notify_digest(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from ca.notices.outbox import OutboxStore
    from ca.notices.planner import NotificationPlanner

    settings = config.notifications
    outbox = OutboxStore(ca.db, max_attempts=settings.max_attempts)
    queued = await NotificationPlanner(ca, settings, outbox).digest(ca.clock.now(), force=True)
    print(f"digest: {queued} newly queued (delivered by the server, or by `tetra notify run`)")
    return 0


def add_commands(sub: Subcommands) -> None:
    notify = sub.add_parser("notify", help="expiry and weakness notifications").add_subparsers(
        dest="action", required=True
    )
    add_config_option(notify.add_parser("run", help="plan what is due and deliver it now (one pass)")).set_defaults(
        func=notify_run
    )
    add_config_option(
        notify.add_parser("status", help="the outbox: queued, delivered, failing, given up")
    ).set_defaults(func=notify_status)
    p = add_config_option(notify.add_parser("test", help="send one test message now"))
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--email", metavar="ADDRESS", help="send a test email to this address")
    target.add_argument("--webhook", metavar="NAME", help="post a test document to this configured webhook")
    p.set_defaults(func=notify_test)
    add_config_option(notify.add_parser("digest", help="queue today's digest now, whatever the hour")).set_defaults(
        func=notify_digest
    )
