"""``raftkit export | validate | finetune | jobs``: from a run's examples to a fine-tuned model.

- ``raftkit export RUN_DIR`` — split ``RUN_DIR/examples.jsonl`` and write the upload-ready
  files under ``RUN_DIR/dataset/<format>/`` (``prepare_dataset``). ``--formats dpo`` writes
  the run's preference pairs (``dpo`` and ``dpo-trl``; ``--preference-pairs N`` asks the
  teacher for flawed answers when the run has fewer than N).
- ``raftkit validate FILE`` — check a chat (or dpo) JSONL file the way the service will; with
  ``--student BASE [--max-seq-length N]``, audit it against an open-weight student's chat
  template instead (``raftkit.students.audit``).
- ``raftkit finetune RUN_DIR --model gpt-4o-mini --epochs 3 [--wait]`` — upload the chat
  files (identical files are not uploaded twice), start a job, and with ``--wait`` print its
  events live and the final metrics. The job id is kept in ``RUN_DIR/finetune.json``: running
  the command again resumes waiting for that job instead of starting another (``--new`` starts
  another). On Azure, ``--deployment NAME`` with the ARM arguments deploys the model. The
  workflow itself is :class:`raftkit.finetune_run.FineTuneRun`; this module only reads the
  arguments and prints.
  ``--method dpo [--beta B]`` trains on the preference pairs of ``--formats dpo``; on Azure
  ``--training-tier standard|global|developer`` picks the training tier (default: the best
  the base model takes) and ``--deployment-type`` the deployment's type. The base model is
  checked against its lifecycle dates before anything is uploaded.
  ``--provider local --model BASE`` trains a LoRA adapter on this machine instead
  (:mod:`raftkit.cli._local_training`: its flags, and ``RUN_DIR/finetune/local/``).
- ``raftkit jobs list | show ID | cancel ID | inventory`` (``inventory``: the fine-tuned
  models, their base model, creation and shutdown dates and days left; ``--run RUN_DIR``:
  that run's local jobs).

The four commands share the provider set-up, the lifecycle check and the event printing, which
is why this module is longer than most; the Azure choices (``_tiers``), the preference pairs
(``_preferences``), the dated tables (``_reference``) and local training (``_local_training``)
live in modules of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from raftkit.cli._clients import OpenedClient, add_client_arguments, chosen_provider, open_client
from raftkit.cli._local_training import (
    add_local_arguments,
    local_base,
    local_from_adapter,
    local_job_lines,
    local_provider,
    next_steps,
)
from raftkit.cli._preferences import (
    PREFERENCE_FORMATS,
    check_preference_files,
    export_preferences,
    with_trl,
)
from raftkit.cli._progress import StatusLine
from raftkit.cli._reference import (
    add_reference_arguments,
    hosted_provider,
    lifecycle_table,
    report_lifecycle,
    student_default,
    today_override,
)
from raftkit.cli._tiers import TrainingChoices, training_choices
from raftkit.dataset import (
    exporter_names,
    prepare_dataset,
    push_hf_dataset,
    validate_chat_jsonl,
    validate_preference_jsonl,
)
from raftkit.dataset.validate import Purpose
from raftkit.errors import EmptyInputError, UsageError
from raftkit.finetune import (
    AzureFineTuneProvider,
    FineTuneJob,
    FineTuneProvider,
    Hyperparameters,
    JobEvent,
    LifecycleReport,
    LocalLoRAProvider,
    OpenAIFineTuneProvider,
    check_model,
    fine_tuned_inventory,
)
from raftkit.finetune_run import FineTuneRun
from raftkit.html_page import simulated_markdown
from raftkit.llm import (
    AzureAccount,
    AzureManagementClient,
    LLMClient,
    PollPolicy,
    RequestActivity,
)
from raftkit.llm.azure_management import MANAGEMENT_SCOPE
from raftkit.reference_data import default_models
from raftkit.run_dir import RunDir
from raftkit.students import audit_student

__all__ = ["add_export", "add_jobs", "add_parser", "add_validate", "run"]


def _student_default_help() -> str:
    """What ``--model`` defaults to, as help shows it: the shipped table's student (a
    ``--defaults-file`` may name another)."""
    return f"{default_models().student}, from raftkit's defaults table"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``finetune`` alone."""
    p = commands.add_parser(
        "finetune",
        help="fine-tune a student model on a run's examples (OpenAI, Azure OpenAI, or LoRA "
        "on this machine)",
        description="Export RUN_DIR's examples if needed, upload the training files, start a "
        "fine-tuning job (supervised, or DPO on the pairs of `raftkit export --formats dpo`) "
        "and (with --wait) follow it to the end. Run it again to resume waiting for the job "
        "recorded in RUN_DIR/finetune.json. The base model is checked against its lifecycle "
        "dates first: a model or provider past its fine-tuning date is refused before anything "
        "is uploaded. --provider local --model BASE trains a LoRA adapter of an open-weight "
        "model here instead; a training that was killed resumes from its last checkpoint when "
        "the command is run again.",
    )
    p.add_argument("run_dir", type=Path, help="the run directory of `raftkit generate`")
    p.add_argument(
        "--model",
        help=f"the base model to fine-tune (default: {_student_default_help()}; with "
        "--provider local: the BASE)",
    )
    p.add_argument(
        "--method",
        choices=["supervised", "dpo"],
        default="supervised",
        help="supervised: chat examples; dpo: the preference pairs of dataset/dpo/",
    )
    p.add_argument(
        "--beta",
        type=float,
        help="DPO's beta, above 0 and at most 2 (default: auto; --provider local: 0.1)",
    )
    p.add_argument(
        "--training-tier",
        choices=["standard", "global", "developer"],
        help="Azure: where the job trains (default: global when the model takes it, else "
        "standard; developer is cheapest, on spare capacity, without SLA or data residency)",
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
    arm.add_argument(
        "--deployment-type",
        choices=["standard", "global", "developer", "provisioned"],
        help="standard (default), global, provisioned, or developer: for evaluating a "
        "candidate, no hosting fee, removed by Azure 24 hours after it is created",
    )
    arm.add_argument("--sku", help="the ARM sku.name itself (instead of --deployment-type)")
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
    p.add_argument(
        "--model",
        help="the student, for token limits, cost and its lifecycle dates "
        f"(default: {_student_default_help()})",
    )
    p.add_argument("--epochs", type=int, help="for the cost estimate (default: auto)")
    p.add_argument(
        "--preference-pairs",
        type=int,
        default=0,
        metavar="N",
        help="dpo: when the run has fewer than N natural pairs (answers rejected, then "
        "accepted), ask the teacher for deliberately flawed answers to reach N (synthetic, "
        "journaled)",
    )
    p.add_argument("--teacher-model", help="for --preference-pairs (default: the run's teacher)")
    hub = p.add_argument_group("Hugging Face Hub")
    hub.add_argument(
        "--push-to-hub",
        metavar="REPO",
        help="publish the hf export (one DatasetDict) as the Hub dataset REPO (user/name); "
        "the token comes from HF_TOKEN or `hf auth login`",
    )
    hub.add_argument("--private", action="store_true", help="make the Hub dataset private")
    add_client_arguments(p)
    p.set_defaults(handler=run)


def add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "validate",
        help="check a chat (or dpo) fine-tuning JSONL file before uploading it",
        description="Check FILE the way the fine-tuning service will (chat examples, or the "
        "preference pairs of --formats dpo); exit 1 if it would be rejected.",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--model", help=f"default: {_student_default_help()}")
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
    add_reference_arguments(p)
    p.set_defaults(handler=run)


def add_jobs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "jobs",
        help="list, show or cancel fine-tuning jobs; inventory: fine-tuned models and days left",
    )
    p.add_argument("action", choices=["list", "show", "cancel", "inventory"])
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
    model = args.model or student_default(args)
    formats = with_trl(list(args.formats))
    if args.push_to_hub and "hf" not in formats:
        formats.append("hf")  # what is pushed is the hf export
    wants_pairs = any(name in PREFERENCE_FORMATS for name in formats)
    if args.preference_pairs and not wants_pairs:
        raise UsageError("--preference-pairs is for --formats dpo")
    options: Mapping[str, Mapping[str, Any]] = {}
    provider = chosen_provider(args)
    # a service is asked only when it is really there (or the teacher is needed anyway)
    if provider != "simulator" or args.preference_pairs:
        async with open_client(args) as opened:
            await _export_lifecycle(args, opened.client, model, opened.provider)
            if wants_pairs:
                _, options = await export_preferences(args, opened.client)
    else:
        await _export_lifecycle(args, None, model, provider)
        if wants_pairs:
            _, options = await export_preferences(args, None)
    out = args.out or run.dataset
    prepared = await prepare_dataset(
        examples,
        out,
        formats=formats,
        system_prompt=args.system_prompt,
        seed=args.seed,
        model=model,
        epochs=args.epochs or "auto",
        exporter_options=options,
    )
    print(prepared.render())
    pairs_ok = await check_preference_files(prepared) if wants_pairs else True
    for name, parts in prepared.files.items():
        for part, path in parts.items():
            print(f"{name} {part}: {path}")
    if "hf" in prepared.files:
        print(f"hf: {Path(out) / 'hf'} (one DatasetDict: datasets.load_from_disk reads it)")
    if not (prepared.ok and pairs_ok):
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


async def _export_lifecycle(
    args: argparse.Namespace, client: LLMClient | None, model: str, provider: str
) -> None:
    # exported files serve Azure and local trainers too: a refusal here is only a warning
    await report_lifecycle(
        args,
        client,
        model,
        provider=provider,
        purpose="finetune",
        refuse=False,
        note=" (the files are written anyway, for another provider or a local trainer)",
    )


async def _validate(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise UsageError(f"{args.file} does not exist")
    if args.student:
        audit = await anyio.to_thread.run_sync(
            lambda: audit_student(args.file, args.student, max_seq_length=args.max_seq_length)
        )
        print(audit.render())
        return 0 if audit.ok else 1
    model = args.model or student_default(args)
    if await anyio.to_thread.run_sync(_holds_preference_pairs, args.file):
        pairs = await anyio.to_thread.run_sync(
            lambda: validate_preference_jsonl(args.file, model=model)
        )
        print(pairs.render())
        return 0 if pairs.ok else 1
    purpose: Purpose = (
        args.purpose
        if args.purpose != "auto"
        else "validation"
        if "valid" in args.file.stem.lower()
        else "training"
    )
    report = await anyio.to_thread.run_sync(
        lambda: validate_chat_jsonl(
            args.file, model=model, epochs=args.epochs or "auto", purpose=purpose
        )
    )
    print(report.render())
    return 0 if report.ok else 1


def _holds_preference_pairs(path: Path) -> bool:
    """Whether the file's first row is a preference pair (a ``dpo`` export)."""
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError:
                    return False
                return isinstance(row, dict) and "preferred_output" in row
    return False


# ---------------------------------------------------------------------------- finetune


def _provider(
    opened: OpenedClient, args: argparse.Namespace, training_type: str | None = None
) -> FineTuneProvider:
    interval: float = getattr(args, "poll_interval", None) or 10.0
    if interval <= 0:
        raise UsageError("--poll-interval must be positive")
    poll = PollPolicy(
        initial=interval, maximum=max(60.0, interval), timeout=getattr(args, "timeout", None)
    )
    if opened.provider == "azure":
        return AzureFineTuneProvider(
            opened.client,
            poll=poll,
            file_poll=poll,
            deployment_poll=poll,
            training_type=training_type,
        )
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
    if args.beta is not None and args.method != "dpo":
        raise UsageError("--beta is a DPO hyperparameter: use it with --method dpo")
    if args.from_adapter is not None and (args.provider != "local" or args.method != "dpo"):
        raise UsageError("--from-adapter is for --provider local --method dpo")
    run = RunDir(args.run_dir)
    with run.lock("raftkit finetune"):
        return await _finetune_locked(args, run)


async def _finetune_locked(args: argparse.Namespace, run: RunDir) -> int:
    async with AsyncExitStack() as stack:
        activity: Callable[[], RequestActivity | None] | None = None
        choices: TrainingChoices | None = None
        lifecycle: Callable[[str], Awaitable[LifecycleReport]] | None = None
        if args.provider == "local":  # LoRA here: no endpoint to open, no dates to check
            model = local_base(args.model)
            provider: FineTuneProvider = await stack.enter_async_context(local_provider(args, run))
            name, simulated = "local", run.simulated()
            if simulated:
                print(simulated_markdown(), flush=True)
        else:
            model = args.model or student_default(args)
            opened = await stack.enter_async_context(open_client(args))
            name, activity = opened.provider, opened.client.activity
            simulated = opened.simulated or run.simulated()
            if simulated:
                print(simulated_markdown(), flush=True)
            choices = training_choices(args, opened.provider, model, opened.client)
            tier = choices.tier.api_value if choices.tier is not None else None
            client = opened.client

            async def check(base: str) -> LifecycleReport:
                return await check_model(
                    client,
                    base,
                    provider=hosted_provider(name),
                    purpose="finetune",
                    table=lifecycle_table(args),
                    today=today_override(),
                )

            lifecycle = check
            provider = await stack.enter_async_context(_provider(opened, args, tier))
        finetuning = FineTuneRun(
            args.run_dir,
            provider,
            provider_name=name,
            model=model,
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
            method=args.method,
            beta=args.beta,
            from_adapter=local_from_adapter(args.from_adapter, run),
            lifecycle=lifecycle,
            price_per_million=choices.price_per_million if choices is not None else None,
            price_note=choices.price_note if choices is not None else "",
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
        return await _report(args, finetuning, done, choices)


def _losses(event: JobEvent) -> str | None:
    """``train loss 1.234  valid loss 1.456`` (and a local DPO job's ``reward margin``) from a
    step event's data, when it has them."""
    shown = (
        ("train loss", "train_loss"),
        ("valid loss", "valid_loss"),
        ("reward margin", "reward_margin"),
    )
    parts = [
        f"{label} {value:.3f}"
        for label, key in shown
        if isinstance(value := event.data.get(key), int | float)
    ]
    return "  ".join(parts) or None


async def _report(
    args: argparse.Namespace,
    finetuning: FineTuneRun,
    job: FineTuneJob,
    choices: TrainingChoices | None,
) -> int:
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
        if not isinstance(finetuning.provider, AzureFineTuneProvider) or choices is None:
            raise UsageError(
                "--deployment is for Azure; an OpenAI model is usable at once, a local adapter "
                "is served with `raftkit serve --run RUN_DIR`"
            )
        await _deploy(args, finetuning, job, choices)
    return 0


async def _deploy(
    args: argparse.Namespace, finetuning: FineTuneRun, job: FineTuneJob, choices: TrainingChoices
) -> None:
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
            sku_name=choices.sku,
            capacity=args.capacity,
        )
    print(f"deployed {deployment.model} as {deployment.name} ({deployment.provisioning_state})")
    if choices.deployment is not None and choices.deployment.lifetime_hours is not None:
        print(
            f"{deployment.name} is a {choices.deployment.sku} deployment: Azure removes it "
            f"{choices.deployment.lifetime_hours:g} hours after it was created; deploy it again "
            "(or as --deployment-type standard) to keep it"
        )


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
    if args.action in ("show", "cancel") and not args.job_id:
        raise UsageError(f"`raftkit jobs {args.action}` needs a job id")
    if args.run is not None:
        if not args.run.is_dir():
            raise UsageError(f"--run {args.run} is not a directory")
        if args.action == "inventory":
            raise UsageError(
                "`raftkit jobs inventory` lists a service's fine-tuned models: drop --run"
            )
        async with local_provider(args, RunDir(args.run)) as local:
            return await _job_action(args, local)
    if (args.job_id or "").startswith("ftjob-local-"):
        raise UsageError(f"{args.job_id} is a local job: add --run RUN_DIR (its run directory)")
    async with open_client(args) as opened, _provider(opened, args) as provider:
        if args.action == "inventory":
            inventory = await fine_tuned_inventory(
                provider,
                opened.client,
                provider_name=hosted_provider(opened.provider),
                table=lifecycle_table(args),
                today=today_override(),
            )
            print(inventory.render())
            return 0
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
    method = job.raw.get("method")
    kind = method.get("type") if isinstance(method, dict) else None
    tier = job.raw.get("trainingType")
    if kind or tier:
        print(f"  method: {kind or 'supervised'}" + (f"  training tier: {tier}" if tier else ""))
    if job.hyperparameters:
        values = ", ".join(f"{k}={v}" for k, v in sorted(job.hyperparameters.items()))
        print(f"  hyperparameters: {values}")
    if job.error is not None:
        print(f"  error: [{job.error.code or '-'}] {job.error.message}")
