"""``raftkit export | validate | finetune | jobs``: from a run's examples to a fine-tuned model.

- ``raftkit export RUN_DIR`` — split ``RUN_DIR/examples.jsonl`` and write the upload-ready
  files under ``RUN_DIR/dataset/<format>/`` (``prepare_dataset``).
- ``raftkit validate FILE`` — check a chat JSONL file the way the service will.
- ``raftkit finetune RUN_DIR --model gpt-4o-mini --epochs 3 [--wait]`` — upload the chat
  files (identical files are not uploaded twice), start a job, and with ``--wait`` print its
  events live and the final metrics. The job id is kept in ``RUN_DIR/finetune.json``: running
  the command again resumes waiting for that job instead of starting another (``--new`` starts
  another). On Azure, ``--deployment NAME`` with the ARM arguments deploys the model. The
  workflow itself is :class:`raftkit.finetune_run.FineTuneRun`; this module only reads the
  arguments and prints.
- ``raftkit jobs list | show ID | cancel ID``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio

from raftkit.cli._clients import OpenedClient, add_client_arguments, open_client
from raftkit.dataset import exporter_names, prepare_dataset, validate_chat_jsonl
from raftkit.errors import EmptyInputError, UsageError
from raftkit.finetune import (
    AzureFineTuneProvider,
    FineTuneJob,
    FineTuneProvider,
    Hyperparameters,
    JobEvent,
    OpenAIFineTuneProvider,
)
from raftkit.finetune_run import FineTuneRun
from raftkit.html_page import simulated_markdown
from raftkit.llm import AzureAccount, AzureManagementClient, PollPolicy
from raftkit.llm.azure_management import MANAGEMENT_SCOPE
from raftkit.run_dir import RunDir

__all__ = ["add_parser", "add_parsers", "run"]


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``export``, ``validate``, ``finetune`` and ``jobs``."""
    _add_export(commands)
    _add_validate(commands)
    add_parser(commands)
    _add_jobs(commands)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``finetune`` alone."""
    p = commands.add_parser(
        "finetune",
        help="fine-tune a student model on a run's examples (OpenAI or Azure OpenAI)",
        description="Export RUN_DIR's examples if needed, upload the chat files, start a "
        "supervised fine-tuning job and (with --wait) follow it to the end. Run it again to "
        "resume waiting for the job recorded in RUN_DIR/finetune.json.",
    )
    p.add_argument("run_dir", type=Path, help="the run directory of `raftkit generate`")
    p.add_argument("--model", default="gpt-4o-mini", help="the base model to fine-tune")
    p.add_argument("--epochs", type=int, help="epochs (default: the service chooses)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate-multiplier", type=float)
    p.add_argument("--suffix", help="up to 64 characters in the fine-tuned model's name")
    p.add_argument("--seed", type=int)
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.add_argument("--new", action="store_true", help="start a new job even if one is recorded")
    p.add_argument(
        "--poll-interval", type=float, default=10.0, help="seconds between polls at first"
    )
    p.add_argument("--timeout", type=float, help="stop waiting after this many seconds")
    arm = p.add_argument_group("Azure deployment (after --wait)")
    arm.add_argument("--deployment", help="deploy the fine-tuned model under this name")
    arm.add_argument("--subscription", default=os.environ.get("AZURE_SUBSCRIPTION_ID"))
    arm.add_argument("--resource-group", default=os.environ.get("AZURE_RESOURCE_GROUP"))
    arm.add_argument(
        "--account",
        default=os.environ.get("AZURE_OPENAI_ACCOUNT"),
        help="the Azure OpenAI resource's name",
    )
    arm.add_argument("--sku", default="standard")
    arm.add_argument("--capacity", type=int, default=1)
    arm.add_argument("--management-url", default="https://management.azure.com")
    add_client_arguments(p)
    p.set_defaults(handler=run)


def _add_export(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "export",
        help="split a run's examples and write fine-tuning files",
        description="Split RUN_DIR/examples.jsonl (grouped by source chunk) and write each "
        "format's train/validation/test files under RUN_DIR/dataset/<format>/.",
    )
    p.add_argument("run_dir", type=Path)
    p.add_argument("--examples", type=Path, help="default: RUN_DIR/examples.jsonl")
    p.add_argument("--out", type=Path, help="default: RUN_DIR/dataset")
    p.add_argument(
        "--formats",
        nargs="+",
        default=["chat"],
        metavar="FORMAT",
        help=f"export formats ({', '.join(exporter_names())})",
    )
    p.add_argument("--system-prompt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="gpt-4o-mini", help="for token limits and cost")
    p.add_argument("--epochs", type=int, help="for the cost estimate (default: auto)")
    p.set_defaults(handler=run)


def _add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "validate",
        help="check a chat fine-tuning JSONL file before uploading it",
        description="Check FILE the way the fine-tuning service will; exit 1 if it would be "
        "rejected.",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--model", default="gpt-4o-mini")
    p.add_argument("--epochs", type=int)
    p.set_defaults(handler=run)


def _add_jobs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("jobs", help="list, show or cancel fine-tuning jobs")
    p.add_argument("action", choices=["list", "show", "cancel"])
    p.add_argument("job_id", nargs="?", help="the job (for show and cancel)")
    p.add_argument("--limit", type=int, default=20, help="jobs listed at most")
    add_client_arguments(p)
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[argparse.Namespace], Awaitable[int]]] = {
        "export": _export,
        "validate": _validate,
        "finetune": _finetune,
        "jobs": _jobs,
    }
    return await handlers[args.command](args)


# ---------------------------------------------------------------------------- export, validate


async def _export(args: argparse.Namespace) -> int:
    run = RunDir(args.run_dir)
    examples = args.examples or run.examples
    if not examples.is_file():
        raise UsageError(f"{examples} does not exist; run `raftkit generate` first")
    if not await anyio.to_thread.run_sync(_has_a_line, examples):
        raise EmptyInputError(
            f"{examples} has no examples, so there is nothing to export; see the run's "
            f"report ({run.report_md}) and rejections.jsonl for why"
        )
    with run.lock("raftkit export"):
        return await _export_locked(args, run, examples)


def _has_a_line(path: Path) -> bool:
    with path.open("rb") as f:
        return any(line.strip() for line in f)


async def _export_locked(args: argparse.Namespace, run: RunDir, examples: Path) -> int:
    if run.simulated():
        print(simulated_markdown(), flush=True)
    prepared = await prepare_dataset(
        examples,
        args.out or run.dataset,
        formats=args.formats,
        system_prompt=args.system_prompt,
        seed=args.seed,
        model=args.model,
        epochs=args.epochs or "auto",
    )
    print(prepared.render())
    for name, parts in prepared.files.items():
        for part, path in parts.items():
            print(f"{name} {part}: {path}")
    return 0 if prepared.ok else 1


async def _validate(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise UsageError(f"{args.file} does not exist")
    report = await anyio.to_thread.run_sync(
        lambda: validate_chat_jsonl(args.file, model=args.model, epochs=args.epochs or "auto")
    )
    print(report.render())
    return 0 if report.ok else 1


# ---------------------------------------------------------------------------- finetune


def _provider(opened: OpenedClient, args: argparse.Namespace) -> FineTuneProvider:
    interval: float = getattr(args, "poll_interval", 10.0)
    if interval <= 0:
        raise UsageError("--poll-interval must be positive")
    poll = PollPolicy(
        initial=interval, maximum=max(60.0, interval), timeout=getattr(args, "timeout", None)
    )
    if opened.provider == "azure":
        return AzureFineTuneProvider(opened.client, poll=poll, file_poll=poll, deployment_poll=poll)
    return OpenAIFineTuneProvider(opened.client, poll=poll)


def _print_event(event: JobEvent) -> None:
    when = datetime.fromtimestamp(event.created_at, UTC).strftime("%H:%M:%S")
    print(f"[{when}] {event.level:<5} {event.message}", flush=True)


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


async def _finetune(args: argparse.Namespace) -> int:
    if not args.run_dir.is_dir():
        raise UsageError(f"{args.run_dir} is not a directory")
    run = RunDir(args.run_dir)
    with run.lock("raftkit finetune"):
        return await _finetune_locked(args, run)


async def _finetune_locked(args: argparse.Namespace, run: RunDir) -> int:
    async with open_client(args) as opened, _provider(opened, args) as provider:
        simulated = opened.simulated or run.simulated()
        if simulated:
            print(simulated_markdown(), flush=True)
        finetuning = FineTuneRun(
            args.run_dir,
            provider,
            provider_name=opened.provider,
            model=args.model,
            hyperparameters=Hyperparameters(
                n_epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate_multiplier=args.learning_rate_multiplier,
            ),
            suffix=args.suffix,
            seed=args.seed,
            say=lambda message: print(message, flush=True),
            warn=_warn,
            simulated=simulated,
        )
        # the simulator forgets its jobs between runs: nothing recorded can be resumed there
        job = await finetuning.start_or_resume(resume=not args.new and not opened.simulated)
        if not args.wait:
            print(f"follow it with: raftkit jobs show {job.id}")
            return 0
        done = await finetuning.wait(job, on_event=_print_event)
        return await _report(args, finetuning, done)


async def _report(args: argparse.Namespace, finetuning: FineTuneRun, job: FineTuneJob) -> int:
    print(f"job {job.id}: {job.status}")
    if job.status != "succeeded":
        if job.error is not None:
            code = f" [{job.error.code}]" if job.error.code else ""
            print(f"reason{code}: {job.error.message}", file=sys.stderr)
        return 1
    print(f"fine-tuned model: {job.fine_tuned_model}")
    if job.trained_tokens is not None:
        print(f"trained tokens: {job.trained_tokens:,}")
    if job.result_files:
        metrics = await finetuning.provider.metrics(job)
        print(f"metrics: {metrics.render()}")
    if args.deployment:
        if not isinstance(finetuning.provider, AzureFineTuneProvider):
            raise UsageError("--deployment is for Azure; an OpenAI model is usable at once")
        await _deploy(args, finetuning, job)
    return 0


async def _deploy(args: argparse.Namespace, finetuning: FineTuneRun, job: FineTuneJob) -> None:
    if not (args.subscription and args.resource_group and args.account):
        raise UsageError(
            "--deployment needs --subscription, --resource-group and --account "
            "(or AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZURE_OPENAI_ACCOUNT)"
        )
    async with AzureManagementClient(
        token_provider=_management_token(), base_url=args.management_url
    ) as management:
        deployment = await finetuning.deploy(
            job,
            management=management,
            account=AzureAccount(
                subscription_id=args.subscription,
                resource_group=args.resource_group,
                account_name=args.account,
            ),
            name=args.deployment,
            sku_name=args.sku,
            capacity=args.capacity,
        )
    print(f"deployed {deployment.model} as {deployment.name} ({deployment.provisioning_state})")


def _management_token() -> Callable[[], str]:
    """An ARM token: ``AZURE_MANAGEMENT_TOKEN``, else azure-identity's default credential."""
    fixed = os.environ.get("AZURE_MANAGEMENT_TOKEN")
    if fixed:
        return lambda: fixed
    try:
        from azure.identity import (  # type: ignore[import-not-found]
            DefaultAzureCredential,
            get_bearer_token_provider,
        )
    except ImportError as e:
        raise UsageError(
            "deploying needs an ARM token: set AZURE_MANAGEMENT_TOKEN or install azure-identity"
        ) from e
    provider: Callable[[], str] = get_bearer_token_provider(
        DefaultAzureCredential(), MANAGEMENT_SCOPE
    )
    return provider


# ---------------------------------------------------------------------------- jobs


async def _jobs(args: argparse.Namespace) -> int:
    if args.action != "list" and not args.job_id:
        raise UsageError(f"`raftkit jobs {args.action}` needs a job id")
    async with open_client(args) as opened, _provider(opened, args) as provider:
        if args.action == "list":
            shown = 0
            async for job in provider.list_jobs():
                print(f"{job.id}  {job.status:<16} {job.model}  {job.fine_tuned_model or '-'}")
                shown += 1
                if shown >= args.limit:
                    break
            if shown == 0:
                print("no fine-tuning jobs")
            return 0
        if args.action == "cancel":
            job = await provider.cancel_job(args.job_id)
            print(f"job {job.id}: {job.status}")
            return 0
        job = await provider.get_job(args.job_id)
        _show(job)
        recent: list[JobEvent] = []
        async for event in provider.events(job.id):
            recent.append(event)
            if len(recent) >= 10:
                break
        for event in reversed(recent):
            _print_event(event)
        if job.status == "succeeded" and job.result_files:
            print(f"metrics: {(await provider.metrics(job)).render()}")
        return 0


def _show(job: FineTuneJob) -> None:
    print(f"job {job.id}: {job.status}")
    print(f"  model: {job.model}")
    print(f"  fine-tuned model: {job.fine_tuned_model or '-'}")
    print(f"  training file: {job.training_file}  validation file: {job.validation_file or '-'}")
    if job.hyperparameters:
        values = ", ".join(f"{k}={v}" for k, v in sorted(job.hyperparameters.items()))
        print(f"  hyperparameters: {values}")
    if job.error is not None:
        print(f"  error: [{job.error.code or '-'}] {job.error.message}")
