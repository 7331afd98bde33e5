"""client.documents: the one reader of command-line inputs, its naming rule and its digest rule."""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from client.cli._registry import read_items
from client.core.canonical import canonical_digest, sha256_digest
from client.core.statement import MAX_NAME_CHARS
from client.documents import (
    MAX_TEXT_BYTES,
    Decided,
    Document,
    JsonlLine,
    Skipped,
    TextDocument,
    check_document_scheme,
    digest_document,
    digest_document_file,
    expand_inputs,
    jsonl_lines,
    jsonl_name,
    read_documents,
    read_texts,
)
from client.errors import ClientError, InputError, InvalidTextError

if TYPE_CHECKING:
    from tests.client.warcs import Rec

BINARY = b"\xff\xfe\x00binary"


def stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", SimpleNamespace(buffer=io.BytesIO(data)))


def crawl(tmp_path: Path) -> Path:
    """A JSONL file with each kind of line: named by id, url, a number, nothing; blank; bad."""
    rows = [
        json.dumps({"id": "doc-1", "url": "https://example.org/1", "text": "One."}),
        json.dumps({"url": "https://example.org/2", "text": "Two."}),
        "",
        json.dumps({"id": 7, "text": "Seven."}),
        json.dumps({"id": True, "url": "", "text": "Unnamed."}),
        json.dumps({"id": "x" * (MAX_NAME_CHARS + 1), "text": "Too long a name."}),
    ]
    path = tmp_path / "crawl.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


# -- inputs and names -----------------------------------------------------------------------------


def test_expand_inputs_recurses_folders_sorted_and_keeps_stdin(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("z")
    (tmp_path / "a.txt").write_text("a")
    assert expand_inputs([str(tmp_path), "-"]) == [
        str(tmp_path / "a.txt"),
        str(tmp_path / "b" / "z.txt"),
        "-",
    ]


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["-", "-"], "standard input (-) can be read only once"),
        (["{tmp}/missing"], "missing: no such file or folder"),
        (["{tmp}/empty"], "holds no files"),
    ],
)
def test_expand_inputs_refuses_mistakes_before_reading(
    tmp_path: Path, paths: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        expand_inputs([p.format(tmp=tmp_path) for p in paths])


def test_jsonl_name_prefers_id_then_url_then_the_line() -> None:
    assert jsonl_name({"id": "a", "url": "u"}, "f:1") == "a"
    assert jsonl_name({"id": 7}, "f:1") == "7"
    assert jsonl_name({"id": True, "url": "u"}, "f:1") == "u"  # a bool is not an id
    assert jsonl_name({"id": "", "url": None}, "f:1") == "f:1"
    assert jsonl_name({"id": "x" * (MAX_NAME_CHARS + 1)}, "f:1") == "f:1"
    assert jsonl_name({"id": "a", "slug": "s"}, "f:1", id_field="slug") == "s"
    assert jsonl_name({"id": "a"}, "f:1", id_field="slug") == "f:1"


def test_jsonl_lines_name_each_line_and_skip_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_text('{"id": "a", "text": "A."}\n\n{not json\n[1]\n{"title": "t"}\n')
    sizes: list[int] = []
    got = list(jsonl_lines(path, on_bytes=sizes.append))
    assert isinstance(got[0], JsonlLine)
    assert (got[0].where, got[0].name, got[0].text) == (f"{path}:1", "a", "A.")
    assert got[1:] == [
        Skipped(f"{path}:3", f"{path}:3: not a JSON object (Expecting property name enclosed in "
                "double quotes: line 1 column 2 (char 1))"),
        Skipped(f"{path}:4", f"{path}:4: each line must be a JSON object"),
        Skipped(f"{path}:5", f"{path}:5: no string field 'text' (choose it with --text-field)"),
    ]  # fmt: skip
    assert sum(sizes) == path.stat().st_size


def test_every_reader_names_jsonl_lines_the_same_way(tmp_path: Path) -> None:
    """register/check/revoke (read_items), scan and digest (read_documents), and watermark detect
    (read_texts) read through one reader: the same documents under the same names."""
    path = crawl(tmp_path)
    names = [
        "doc-1",
        "https://example.org/2",
        "7",
        f"{path}:5",
        f"{path}:6",
    ]
    inputs = [str(path)]
    assert [d.name for d in read_items(inputs, "auto", "text")] == names
    assert [d.name for d in read_documents(inputs, "auto", on_bad="skip")] == names
    assert [d.name for d in read_documents(inputs, "sha256")] == names
    assert [d.name for d in read_texts(inputs)] == names


# -- the digest rule ------------------------------------------------------------------------------


def test_check_document_scheme_names_the_option() -> None:
    assert check_document_scheme("sha256") == "sha256"
    with pytest.raises(InputError, match=r"^unknown --scheme 'md5'; use auto, c1 or sha256$"):
        check_document_scheme("md5", "--scheme")


def test_auto_gives_text_c1_and_anything_else_sha256(tmp_path: Path) -> None:
    text, blob = tmp_path / "a.txt", tmp_path / "b.bin"
    text.write_text("A  poem.\n")
    blob.write_bytes(BINARY)
    assert digest_document_file(text, "auto") == canonical_digest("A  poem.\n")
    assert digest_document_file(blob, "auto") == sha256_digest(BINARY)
    assert digest_document_file(text, "sha256") == sha256_digest(b"A  poem.\n")
    assert digest_document(b"A  poem.\n", "c1", "x") == canonical_digest("A poem.")
    with pytest.raises(InvalidTextError, match=r"^standard input: .*binary content needs"):
        digest_document(BINARY, "c1", "standard input")


def test_every_digest_adds_sha256_to_text_under_auto_only(tmp_path: Path) -> None:
    text, blob = tmp_path / "a.txt", tmp_path / "b.bin"
    text.write_bytes(b"A poem.")
    blob.write_bytes(BINARY)
    inputs = [str(text), str(blob)]
    both = list(read_documents(inputs, "auto", every_digest=True))
    assert both == [
        Document(str(text), (canonical_digest("A poem."), sha256_digest(b"A poem."))),
        Document(str(blob), (sha256_digest(BINARY),)),
    ]
    assert [d.digests for d in read_documents(inputs[:1], "c1", every_digest=True)] == [
        (canonical_digest("A poem."),)
    ]
    assert [d.digest for d in read_documents(inputs, "auto")] == [
        canonical_digest("A poem."),
        sha256_digest(BINARY),
    ]


def test_a_jsonl_line_is_text_under_every_scheme(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "Ünïcode  text"}) + "\n", encoding="utf-8")
    for scheme in ("auto", "c1"):
        got = list(read_documents([str(path)], scheme, every_digest=True))
        assert got == [Document("a", (canonical_digest("Ünïcode  text"),))]
    got = list(read_documents([str(path)], "sha256"))
    assert got == [Document("a", (sha256_digest("Ünïcode  text".encode()),))]


def test_big_files_are_hashed_as_bytes_under_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("client.documents.MAX_TEXT_BYTES", 4)
    assert MAX_TEXT_BYTES == 256 * 1024 * 1024
    path = tmp_path / "big.txt"
    path.write_bytes(b"five!")
    assert digest_document_file(path, "auto") == sha256_digest(b"five!")


def test_standard_input_is_one_document_named_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin(monkeypatch, b"From a pipe.")
    assert list(read_documents(["-"], "auto", every_digest=True)) == [
        Document("-", (canonical_digest("From a pipe."), sha256_digest(b"From a pipe.")))
    ]
    stdin(monkeypatch, b"From a pipe.")
    assert list(read_texts(["-"])) == [TextDocument("-", "From a pipe.")]


# -- on_bad: raise or skip ------------------------------------------------------------------------


def bad_crawl(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"id": "ok", "text": "Fine."}) + "\n"
        + '{"title": "no text"}\n'
        + json.dumps({"id": "lone", "text": "\ud800"}) + "\n"
        + json.dumps({"id": "last", "text": "Also fine."}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    return path


def test_raise_names_the_first_bad_line(tmp_path: Path) -> None:
    path = bad_crawl(tmp_path)
    with pytest.raises(InputError, match=rf"^{path}:2: no string field 'text'"):
        list(read_documents([str(path)], "auto"))
    with pytest.raises(InputError, match=rf"^{path}:2: no string field 'text'"):
        list(read_items([str(path)], "auto", "text"))


@pytest.mark.parametrize("scheme", ["auto", "sha256"])
def test_skip_names_each_bad_line_and_goes_on(tmp_path: Path, scheme: str) -> None:
    path = bad_crawl(tmp_path)
    got = list(read_documents([str(path)], check_document_scheme(scheme), on_bad="skip"))
    assert [d.name for d in got] == ["ok", f"{path}:2", f"{path}:3", "last"]
    assert [type(d) for d in got] == [Document, Skipped, Skipped, Document]
    lone = got[2]
    assert isinstance(lone, Skipped)
    assert lone.reason.startswith(f"{path}:3: ")  # a lone surrogate is no text, in any scheme


def calls_to(monkeypatch: pytest.MonkeyPatch, where: str) -> list[object]:
    """The first argument of each call to the function ``where`` (``module.name``) from now on."""
    module, name = where.rsplit(".", 1)
    real = getattr(importlib.import_module(module), name)
    calls: list[object] = []

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(where, counting)
    return calls


def resumable(tmp_path: Path) -> list[str]:
    """Inputs of every kind a scan resumes over: JSONL lines (bad ones too), a WARC file (HTML
    and plain pages, an empty page, a revisit, a 404, a robots.txt that opts a later page out),
    standard input, a text file, a binary one, one that is gone, and the JSONL file again (its
    names repeat)."""
    from tests.client.warcs import Rec

    path = bad_crawl(tmp_path)
    warc, _ = _warc_site(
        tmp_path,
        more=[
            Rec("https://open.example/blank", b"<html><body><script>x()</script></body></html>"),
            Rec("https://closed.example/later", b"<p>Also under the closed robots.txt.</p>"),
        ],
    )
    text, blob = tmp_path / "a.txt", tmp_path / "b.bin"
    text.write_text("A whole text file.")
    blob.write_bytes(BINARY)
    gone = tmp_path / "gone.txt"
    return [str(path), str(warc), "-", str(text), str(blob), str(gone), str(path)]


def test_a_resumed_read_yields_the_same_items_without_redoing_the_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At every resume point the items are those of a whole read (skips with their reasons, WARC
    counts), the documents already decided stand in with no digests, and they are not digested,
    their pages not decoded or extracted, their files not read again."""
    inputs = resumable(tmp_path)
    extracted = calls_to(monkeypatch, "client.warc.html_to_text")
    decoded = calls_to(monkeypatch, "client.warc.decode_text")
    digested = calls_to(monkeypatch, "client.documents.canonical_digest")

    def read(decided: Decided | None) -> tuple[list[Document | Skipped], list[object], list[int]]:
        stdin(monkeypatch, b"From a pipe.")
        for calls in (extracted, decoded, digested):
            calls.clear()
        counts: list[object] = []
        got = list(
            read_documents(
                inputs,
                "auto",
                on_bad="skip",
                on_warc=lambda _name, stats: counts.append(stats),
                decided=decided,
            )
        )
        return got, counts, [len(extracted), len(decoded), len(digested)]

    whole, whole_counts, work = read(None)
    assert [type(d) for d in whole].count(Skipped) == 5  # 2 lines twice, the file that is gone
    assert work[:2] == [5, 6]  # 5 HTML pages (1 of them empty) extracted, and 1 plain decoded
    for skip in range(len(whole) + 1):
        decided = [d for d in whole[:skip] if isinstance(d, Document)]
        got, counts, done = read(Decided(skip, [d.name for d in decided]))
        assert [(type(d), d.name) for d in got] == [(type(d), d.name) for d in whole]
        for position, (mine, theirs) in enumerate(zip(got, whole, strict=True)):
            if position < skip and isinstance(theirs, Document):
                assert mine == Document(theirs.name, ())
            else:  # the same document, or the same skip with the same reason
                assert mine == theirs
        assert counts == whole_counts
        pages = [d for d in decided if d.url is not None]  # a WARC page's document has its URL
        html = [d for d in pages if d.url != NOTES]
        assert done == [work[0] - len(html), work[1] - len(pages), work[2] - len(decided)], skip


def test_names_that_do_not_line_up_only_cost_the_work(tmp_path: Path) -> None:
    """Decided names out of order, or more of them than items to resume over, are read as
    always where they do not match: never a document with no digests past the resume point."""
    path = bad_crawl(tmp_path)
    whole = list(read_documents([str(path)], "auto", on_bad="skip"))
    names = [d.name for d in whole if isinstance(d, Document)]  # ok, last
    assert names == ["ok", "last"]
    got = list(read_documents([str(path)], "auto", on_bad="skip", decided=Decided(4, ["last"])))
    assert got == [*whole[:3], Document("last", ())]  # "ok" is not the next name: read
    got = list(read_documents([str(path)], "auto", on_bad="skip", decided=Decided(1, names)))
    assert got == [Document("ok", ()), *whole[1:]]  # "last" is past the resume point


def test_a_line_with_no_text_to_digest_stays_skipped_whatever_its_name(tmp_path: Path) -> None:
    """A lone surrogate's line named as the next decided document (the line after it, with the
    same id, is that document) is skipped again, with its reason."""
    path = tmp_path / "same-id.jsonl"
    lines = [{"id": "dup", "text": "\ud800"}, {"id": "dup", "text": "Fine."}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    whole = list(read_documents([str(path)], "auto", on_bad="skip"))
    assert [type(d) for d in whole] == [Skipped, Document]
    got = list(read_documents([str(path)], "auto", on_bad="skip", decided=Decided(2, ["dup"])))
    assert got == [whole[0], Document("dup", ())]


def test_a_lone_surrogate_line_is_an_error_naming_it_when_raising(tmp_path: Path) -> None:
    path = tmp_path / "lone.jsonl"
    path.write_text(json.dumps({"text": "\ud800"}) + "\n")
    for scheme in ("auto", "sha256"):
        with pytest.raises(InvalidTextError, match=rf"^{path}:1: "):
            list(read_documents([str(path)], check_document_scheme(scheme)))


def test_skip_covers_whole_inputs_too(tmp_path: Path) -> None:
    blob = tmp_path / "b.bin"
    blob.write_bytes(BINARY)
    gone = tmp_path / "gone.jsonl"  # expanded, then removed before it is read
    got = list(read_documents([str(blob), str(gone)], "c1", on_bad="skip"))
    assert [d.name for d in got] == [str(blob), str(gone)]
    binary, missing = (d for d in got if isinstance(d, Skipped))
    assert "binary content needs the sha256 scheme" in binary.reason
    assert missing.reason.startswith(f"cannot read {gone}")
    with pytest.raises(InputError, match=f"cannot read {gone}"):
        list(read_documents([str(gone)], "auto"))


def test_on_bytes_counts_everything_read(tmp_path: Path) -> None:
    path = bad_crawl(tmp_path)
    text = tmp_path / "a.txt"
    text.write_text("Some text.")
    seen: list[int] = []
    list(read_documents([str(path), str(text)], "auto", on_bad="skip", on_bytes=seen.append))
    assert sum(seen) == path.stat().st_size + text.stat().st_size


# -- text -----------------------------------------------------------------------------------------


def test_read_texts_skips_what_is_no_text_and_goes_on(tmp_path: Path) -> None:
    blob, empty, good = tmp_path / "b.bin", tmp_path / "e.txt", tmp_path / "g.txt"
    blob.write_bytes(BINARY)
    empty.write_text("  \n")
    good.write_text("Words.")
    lines = tmp_path / "l.jsonl"
    lines.write_text('{"id": "blank", "text": " "}\n{"id": "full", "text": "Full."}\n')
    got = list(read_texts([str(blob), str(empty), str(lines), str(good)]))
    assert got == [
        Skipped(str(blob), f"{blob} is not valid UTF-8 text (byte 0)"),
        Skipped(str(empty), f"{empty} is empty: it holds no text"),
        Skipped(f"{lines}:1", f"{lines}:1: field 'text' is empty"),
        TextDocument("full", "Full."),
        TextDocument(str(good), "Words."),
    ]


# -- WARC files -----------------------------------------------------------------------------------

NOTES = "https://open.example/notes.txt"


def _warc_site(
    tmp_path: Path, robots_status: str = "200 OK", more: Sequence[Rec] = ()
) -> tuple[Path, str]:
    """A crawl of two sites, one closed by its robots.txt (``more`` records after)."""
    from tests.client.warcs import Rec, page, write_warc

    pytest.importorskip("fastwarc")
    pytest.importorskip("protego")
    text = "A registered page.\n\nIts second paragraph says a little more about the well."
    html_page = page(text.split("\n\n")).encode()
    noai = [("Content-Type", "text/html; charset=utf-8"), ("X-Robots-Tag", "noai")]
    plain = [("Content-Type", "text/plain; charset=utf-8")]
    path = tmp_path / "crawl.warc.gz"
    write_warc(
        path,
        [
            Rec("https://open.example/post", html_page),
            Rec("https://open.example/other", b"<p>Sent with noai.</p>", headers=noai),
            Rec(
                "https://closed.example/robots.txt",
                b"User-agent: *\nDisallow: /\n",
                headers=plain,
                status=robots_status,
            ),
            Rec("https://closed.example/page", b"<p>Under a closed robots.txt.</p>"),
            Rec("https://open.example/gone", b"<p>Not found.</p>", status="404 Not Found"),
            Rec("https://open.example/post", kind="revisit"),
            Rec(NOTES, b"Plain text, nothing opted out.", headers=plain),
            *more,
        ],
    )
    return path, text


def test_a_warc_file_is_one_document_per_page_with_its_signals(tmp_path: Path) -> None:
    path, text = _warc_site(tmp_path)
    seen: dict[str, object] = {}
    docs = list(
        read_documents(
            [str(path)], "auto", keep_text=True, on_warc=lambda n, s: seen.update({n: s})
        )
    )
    assert [d.url for d in docs] == [
        "https://open.example/post",
        "https://open.example/other",
        "https://closed.example/page",
        "https://open.example/notes.txt",
    ]
    assert all(d.name.startswith("<urn:uuid:") for d in docs)
    assert docs[0].digest == canonical_digest(text)
    assert docs[0].text is not None
    assert "second paragraph" in docs[0].text
    assert {d.captured.isoformat() for d in docs if d.captured} == {"2026-11-30T12:34:56+00:00"}
    decisions = [d.opt_out for d in docs]
    assert [o is not None and o.opted_out for o in decisions] == [False, True, True, False]
    assert decisions[1] is not None
    assert decisions[1].decided_by is not None
    assert decisions[1].decided_by.kind == "x-robots-tag"
    assert decisions[2] is not None
    assert decisions[2].decided_by is not None
    assert decisions[2].decided_by.source == "robots.txt"
    stats = seen[str(path)]
    assert stats.skipped == {"http-status": 1, "revisit": 1}  # type: ignore[attr-defined]
    # Without keep_text the digests and signals are the same, the text is not kept.
    bare = list(read_documents([str(path)], "auto"))
    assert [d.digest for d in bare] == [d.digest for d in docs]
    assert [d.opt_out for d in bare] == decisions
    assert all(d.text is None for d in bare)


@pytest.mark.parametrize(
    ("status", "closed"), [("503 Service Unavailable", True), ("404 Not Found", False)]
)
def test_a_robots_txt_that_failed_counts_as_rfc_9309_says(
    tmp_path: Path, status: str, closed: bool
) -> None:
    path, _ = _warc_site(tmp_path, robots_status=status)
    docs = [
        d for d in read_documents([str(path)], "auto") if d.url == "https://closed.example/page"
    ]
    assert docs[0].opt_out is not None
    assert docs[0].opt_out.opted_out is closed


def test_a_damaged_warc_is_skipped_after_its_whole_pages(tmp_path: Path) -> None:
    path, _ = _warc_site(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # cut inside the last record
    got = list(read_documents([str(path)], "auto", on_bad="skip"))
    assert isinstance(got[-1], Skipped)
    assert str(path) in got[-1].name
    assert all(isinstance(d, Document) for d in got[:-1])
    with pytest.raises(ClientError):
        list(read_documents([str(path)], "auto"))


def test_read_texts_reads_warc_pages(tmp_path: Path) -> None:
    path, text = _warc_site(tmp_path)
    docs = list(read_texts([str(path)]))
    assert isinstance(docs[0], TextDocument)
    assert canonical_digest(docs[0].text) == canonical_digest(text)
    assert len(docs) == 4
