"""``raftkit export | validate | finetune | jobs``: from a run's examples to a fine-tuned model.

- ``raftkit export RUN_DIR`` — split ``RUN_DIR/examples.jsonl`` and write the upload-ready
  files under ``RUN_DIR/dataset/<format>/`` (``prepare_dataset``).
- ``raftkit validate FILE`` — check a chat JSONL file the way the service will; with
  ``--student BASE [--max-seq-length N]``, audit it against an open-weight student's chat
  template instead (``raftkit.students.audit``).
- ``raftkit finetune RUN_DIR --model gpt-4o-mini --epochs 3 [--wait]`` — upload the chat
  files (identical files are not uploaded twice), start a job, and with ``--wait`` print its
  events live and the final metrics. The job id is kept in ``RUN_DIR/finetune.json``: running
  the command again resumes waiting for that job instead of starting another (``--new`` starts
  another). On Azure, ``--deployment NAME`` with the ARM arguments deploys the model. The
  workflow itself is :class:`raftkit.finetune_run.FineTuneRun`; this module only reads the
  arguments and prints.
  ``--provider local --model BASE`` trains a LoRA adapter on this machine instead
  (:mod:`raftkit.cli._local_training`: its flags, and ``RUN_DIR/finetune/local/``).
- ``raftkit jobs list | show ID | cancel ID`` (``--run RUN_DIR``: that run's local jobs).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import anyio

from raftkit.cli._clients import OpenedClient, add_client_arguments, open_client
from raftkit.cli._local_training import (
    add_local_arguments,
    local_base,
    local_job_lines,
    local_provider,
    next_steps,
)
from raftkit.cli._progress import StatusLine
from raftkit.dataset import (
    exporter_names,
    prepare_dataset,
    push_hf_dataset,
    validate_chat_jsonl,
)
from raftkit.dataset.validate import Purpose
from raftkit.errors import UsageError
from raftkit.finetune import (
    AzureFineTuneProvider,
    FineTuneJob,
    FineTuneProvider,
    Hyperparameters,
    JobEvent,
    LocalLoRAProvider,
    OpenAIFineTuneProvider,
)
from raftkit.finetune_run import FineTuneRun
from raftkit.llm import AzureAccount, AzureManagementClient, PollPolicy, RequestActivity
from raftkit.llm.azure_management import MANAGEMENT_SCOPE
from raftkit.run_dir import RunDir
from raftkit.students import audit_student

__all__ = ["add_export", "add_jobs", "add_parser", "add_validate", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``finetune`` alone."""
    p = commands.add_parser(
        "finetune",
        help="fine-tune a student model on a run's examples (OpenAI, Azure OpenAI, or LoRA "
        "on this machine)",
        description="Export RUN_DIR's examples if needed, upload the chat files, start a "
        "supervised fine-tuning job and (with --wait) follow it to the end. Run it again to "
        "resume waiting for the job recorded in RUN_DIR/finetune.json. --provider local "
        "--model BASE trains a LoRA adapter of an open-weight model here instead; a training "
        "that was killed resumes from its last checkpoint when the command is run again.",
    )
    p.add_argument("run_dir", type=Path, help="the run directory of `raftkit generate`")
    p.add_argument(
        "--model",
        help="the base model to fine-tune (default gpt-4o-mini; with --provider local: the BASE)",
    )
    p.add_argument("--epochs", type=int, help="epochs (default: the service chooses)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate-multiplier", type=float)
    p.add_argument("--suffix", help="up to 64 characters in the fine-tuned model's name")
    p.add_argument("--seed", type=int)
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.add_argument("--new", action="store_true", help="start a new job even if one is recorded")
    p.add_argument("--quiet", action="store_true", help="no live status line while waiting")
    p.add_argument(
        "--poll-interval", type=float, help="seconds between polls at first (default 10; local 0.5)"
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
    add_local_arguments(p)
    add_client_arguments(p, role="fine-tuning", extra_providers=("local",))
    p.set_defaults(handler=run)


def add_export(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    p.add_argument("--system-prompt", help="a system message at the start of every chat row")
    p.add_argument("--seed", type=int, default=0, help="the split's seed")
    p.add_argument("--model", default="gpt-4o-mini", help="for token limits and cost")
    p.add_argument("--epochs", type=int, help="for the cost estimate (default: auto)")
    hub = p.add_argument_group("Hugging Face Hub")
    hub.add_argument(
        "--push-to-hub",
        metavar="REPO",
        help="publish the hf export (one DatasetDict) as the Hub dataset REPO (user/name); "
        "the token comes from HF_TOKEN or `hf auth login`",
    )
    hub.add_argument("--private", action="store_true", help="make the Hub dataset private")
    p.set_defaults(handler=run)


def add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "validate",
        help="check a chat fine-tuning JSONL file before uploading it",
        description="Check FILE the way the fine-tuning service will; exit 1 if it would be "
        "rejected.",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--model", default="gpt-4o-mini", help="the model the file is for")
    p.add_argument("--epochs", type=int, help="for the cost estimate (default: auto)")
    p.add_argument(
        "--purpose",
        choices=["auto", "training", "validation"],
        default="auto",
        help="a validation file is not held to the training minimum and has no cost "
        "(auto: validation when the file name says so, e.g. validation.jsonl)",
    )
    p.add_argument(
        "--student",
        metavar="BASE",
        help="audit FILE with this open-weight student's tokenizer and chat template instead "
        "(a model folder, a model id in the local HF cache, or a .gguf file)",
    )
    p.add_argument("--max-seq-length", type=int, help="with --student: the length rows must fit")
    p.set_defaults(handler=run)


def add_jobs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("jobs", help="list, show or cancel fine-tuning jobs")
    p.add_argument("action", choices=["list", "show", "cancel"])
    p.add_argument("job_id", nargs="?", help="the job (for show and cancel)")
    p.add_argument("--limit", type=int, default=20, help="jobs listed at most")
    p.add_argument(
        "--run",
        type=Path,
        metavar="RUN_DIR",
        help="the local jobs of this run directory (`raftkit finetune --provider local`)",
    )
    add_client_arguments(p, role="jobs")
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
    examples = args.examples or RunDir(args.run_dir).examples
    if not examples.is_file():
        raise UsageError(f"{examples} does not exist; run `raftkit generate` first")
    formats: list[str] = list(args.formats)
    if args.push_to_hub and "hf" not in formats:
        formats.append("hf")  # what is pushed is the hf export
    out = args.out or RunDir(args.run_dir).dataset
    prepared = await prepare_dataset(
        examples,
        out,
        formats=formats,
        system_prompt=args.system_prompt,
        seed=args.seed,
        model=args.model,
        epochs=args.epochs or "auto",
    )
    print(prepared.render())
    for name, parts in prepared.files.items():
        for part, path in parts.items():
            print(f"{name} {part}: {path}")
    if "hf" in prepared.files:
        print(f"hf: {Path(out) / 'hf'} (one DatasetDict: datasets.load_from_disk reads it)")
    if not prepared.ok:
        return 1
    if args.push_to_hub:
        # the token is read here and handed over; it is never printed or logged
        address = await anyio.to_thread.run_sync(
            lambda: push_hf_dataset(
                Path(out) / "hf",
                args.push_to_hub,
                token=os.environ.get("HF_TOKEN") or None,
                private=args.private or None,
            )
        )
        print(f"pushed to {address}")
    return 0


async def _validate(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise UsageError(f"{args.file} does not exist")
    if args.student:
        audit = await anyio.to_thread.run_sync(
            lambda: audit_student(args.file, args.student, max_seq_length=args.max_seq_length)
        )
        print(audit.render())
        return 0 if audit.ok else 1
    purpose: Purpose = (
        args.purpose
        if args.purpose != "auto"
        else "validation"
        if "valid" in args.file.stem.lower()
        else "training"
    )
    report = await anyio.to_thread.run_sync(
        lambda: validate_chat_jsonl(
            args.file, model=args.model, epochs=args.epochs or "auto", purpose=purpose
        )
    )
    print(report.render())
    return 0 if report.ok else 1


# ---------------------------------------------------------------------------- finetune


def _provider(opened: OpenedClient, args: argparse.Namespace) -> FineTuneProvider:
    interval: float = getattr(args, "poll_interval", None) or 10.0
    if interval <= 0:
        raise UsageError("--poll-interval must be positive")
    poll = PollPolicy(
        initial=interval, maximum=max(60.0, interval), timeout=getattr(args, "timeout", None)
    )
    if opened.provider == "azure":
        return AzureFineTuneProvider(opened.client, poll=poll, file_poll=poll, deployment_poll=poll)
    return OpenAIFineTuneProvider(opened.client, poll=poll)


def _event_line(event: JobEvent) -> str:
    when = datetime.fromtimestamp(event.created_at, UTC).strftime("%H:%M:%S")
    return f"[{when}] {event.level:<5} {event.message}"


def _print_event(event: JobEvent) -> None:
    print(_event_line(event), flush=True)


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


async def _finetune(args: argparse.Namespace) -> int:
    if not args.run_dir.is_dir():
        raise UsageError(f"{args.run_dir} is not a directory")
    async with AsyncExitStack() as stack:
        activity: Callable[[], RequestActivity | None] | None = None
        if args.provider == "local":  # LoRA here: no endpoint to open
            args.model = local_base(args.model)
            provider: FineTuneProvider = await stack.enter_async_context(
                local_provider(args, RunDir(args.run_dir))
            )
            name, simulated = "local", False
        else:
            args.model = args.model or "gpt-4o-mini"
            opened = await stack.enter_async_context(open_client(args))
            provider = await stack.enter_async_context(_provider(opened, args))
            name, simulated, activity = opened.provider, opened.simulated, opened.client.activity
        finetuning = FineTuneRun(
            args.run_dir,
            provider,
            provider_name=name,
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
        job = await finetuning.start_or_resume(resume=not args.new)
        if not args.wait:
            where = f" --run {args.run_dir}" if name == "local" else ""
            print(f"follow it with: raftkit jobs show {job.id}{where}")
            return 0
        status = StatusLine("finetune", quiet=args.quiet, activity=activity)
        status.update(phase=f"{job.id} {job.status}")

        def on_event(event: JobEvent) -> None:
            step, total = event.data.get("step"), event.data.get("total_steps")
            if isinstance(step, int | float) and isinstance(total, int | float):
                status.update(done=int(step), total=int(total), unit="steps", detail=_losses(event))
            status.say(_event_line(event))

        def on_job(polled: FineTuneJob) -> None:
            model = f" → {polled.fine_tuned_model}" if polled.fine_tuned_model else ""
            status.update(phase=f"{polled.id} {polled.status}{model}")

        async with status.shown():
            done = await finetuning.wait(job, on_event=on_event, on_job=on_job)
        return await _report(args, finetuning, done)


def _losses(event: JobEvent) -> str | None:
    """``train loss 1.234  valid loss 1.456`` from a step event's data, when it has them."""
    parts = [
        f"{label} {value:.3f}"
        for label, key in (("train loss", "train_loss"), ("valid loss", "valid_loss"))
        if isinstance(value := event.data.get(key), int | float)
    ]
    return "  ".join(parts) or None


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
    summary = finetuning.summary
    if summary is not None:
        if summary.metrics is not None:
            print(f"metrics: {summary.metrics.render()}")
        if summary.curve_svg is not None:
            print(f"training curve: {summary.curve_svg} ({summary.curve_csv})")
        print(f"summary: {summary.report}")
    if finetuning.provider_name == "local":
        for line in next_steps(finetuning.run):
            print(line)
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
    if args.run is not None:
        if not args.run.is_dir():
            raise UsageError(f"--run {args.run} is not a directory")
        async with local_provider(args, RunDir(args.run)) as local:
            return await _job_action(args, local)
    if (args.job_id or "").startswith("ftjob-local-"):
        raise UsageError(f"{args.job_id} is a local job: add --run RUN_DIR (its run directory)")
    async with open_client(args) as opened, _provider(opened, args) as provider:
        return await _job_action(args, provider)


async def _job_action(args: argparse.Namespace, provider: FineTuneProvider) -> int:
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
    if isinstance(provider, LocalLoRAProvider):
        for line in local_job_lines(job):
            print(line)
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
