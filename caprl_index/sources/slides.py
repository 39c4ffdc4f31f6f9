"""Slide decks (.pptx .ppt .odp .key): render with LibreOffice, or read .pptx XML without it.

With LibreOffice (``soffice``) the deck is converted to PDF, one page per slide (hidden slides
included, so page N is slide N), and the PDF splitter captions every slide as a whole page. A
.pptx also gives its native charts (exact data, indexed as chart figures cropped from the render)
and its speaker notes (per-slide extra text).

Without LibreOffice a .pptx is read with python-pptx (`pptx_native`): text, tables, notes, pictures
and native charts as figures; there is no whole-slide render. Other deck formats need LibreOffice.

Untrusted decks run in a sandbox of sorts: a throwaway LibreOffice profile inside the workdir with
macros disabled, stdin closed, a timeout that kills the whole process group, and zip packages are
checked for bombs and encryption before anything parses them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import zipfile
from pathlib import Path
from typing import Final

from caprl_index.config import Settings
from caprl_index.errors import ConfigError, CorruptFile, EncryptedFile, UnsupportedFile
from caprl_index.models import SourceFile
from caprl_index.sources.base import NativeChart, PreparedDocument

AUTO: Final = "auto"
NO_SOFFICE_WARNING: Final = (
    "LibreOffice not found: slides indexed from their XML without rendering; "
    "install libreoffice-impress for whole-slide captions"
)
# Export hidden slides too: page numbers then equal slide numbers, which is what users cite.
PDF_FILTER: Final = 'pdf:impress_pdf_Export:{"ExportHiddenSlides":{"type":"boolean","value":"true"}}'
_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_OOXML: Final = "EncryptedPackage".encode("utf-16-le")  # stream of a password-protected .pptx
_ENCRYPTED_PPT: Final = "EncryptedSummary".encode("utf-16-le")  # stream of a password-protected .ppt
# Zip-bomb limits: real decks are media, which barely compresses; XML compresses ~10-30x.
MAX_ZIP_ENTRIES: Final = 50_000
MAX_UNCOMPRESSED: Final = 8 << 30
MAX_RATIO: Final = 200
_RATIO_FLOOR: Final = 64 << 20  # small packages may compress as well as they like
_PROFILE_SETTINGS: Final = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">\
<prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">\
<prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc">\
<prop oor:name="UseDocumentSystemFileLocking" oor:op="fuse"><value>false</value></prop></item>
</oor:items>
"""


def prepare_slides(
    file: SourceFile, settings: Settings, workdir: Path, *, soffice: str | None = AUTO
) -> PreparedDocument:
    """Validate a deck and make it ready for the page splitter.

    `soffice` is the LibreOffice binary: "auto" (the default) reads ``CAPRL_SOFFICE`` and then
    looks for ``soffice``/``libreoffice`` on PATH; None indexes .pptx from XML without rendering.
    Raises `UnsupportedFile`, `EncryptedFile` or `CorruptFile` for a deck it cannot read.
    """
    path = Path(file.path)
    suffix = path.suffix.lower()
    check_package(path, suffix, settings)
    binary = find_soffice(settings.soffice) if soffice == AUTO else soffice
    if binary is None:
        return _prepare_without_soffice(file, settings, suffix)
    pdf = convert_to_pdf(path, workdir, binary, settings.soffice_timeout)
    page_count = _pdf_page_count(pdf, file.path)
    warnings: list[str] = []
    native: tuple[tuple[str, tuple[NativeChart, ...]], ...] = ()
    if suffix == ".pptx" and not _starts_with(path, _OLE_MAGIC):  # not a legacy deck misnamed
        native, warnings = _native(path, page_count, settings.figures)
    return PreparedDocument(
        file=file,
        page_count=page_count,
        format="slides",
        page_mode="slide",
        render_path=str(pdf),
        warnings=tuple(warnings),
        page_extra_text=tuple(extra for extra, _ in native),
        page_charts=tuple(charts for _, charts in native) if settings.figures else (),
    )


def find_soffice(configured: str | None = None) -> str | None:
    """The LibreOffice binary from the setting (``CAPRL_SOFFICE``) or PATH; None when disabled or absent.

    A configured binary that does not exist is a configuration error (exit 2, once), not a damaged deck.
    """
    configured = (configured or "").strip()
    if configured.lower() in ("none", "off", "0", "false"):
        return None
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise ConfigError(
                f"CAPRL_SOFFICE={configured!r}: no such program; give the path of LibreOffice's soffice, "
                "or 'none' to read .pptx decks from their XML"
            )
        return found
    return shutil.which("soffice") or shutil.which("libreoffice")


def _prepare_without_soffice(file: SourceFile, settings: Settings, suffix: str) -> PreparedDocument:
    if suffix != ".pptx" or _starts_with(Path(file.path), _OLE_MAGIC):
        kind = "a legacy PowerPoint 97-2003 file" if suffix == ".pptx" else f"a {suffix} deck"
        raise UnsupportedFile(
            file.path,
            f"{kind} needs LibreOffice to be read: install libreoffice-impress (or set CAPRL_SOFFICE to "
            "its soffice binary), or save the deck as .pptx or PDF",
        )
    from caprl_index.sources.pptx_native import parse_presentation

    pages = parse_presentation(file.path, settings.max_pixels, ocr=settings.figure_ocr, figures=settings.figures)
    return PreparedDocument(
        file=file,
        page_count=len(pages),
        format="slides",
        page_mode="slide",
        render_path=None,
        warnings=(NO_SOFFICE_WARNING,),
        page_extra_text=tuple(p.page.extra_text for p in pages),
        pages=pages,
    )


def _native(
    path: Path, page_count: int, figures: bool
) -> tuple[tuple[tuple[str, tuple[NativeChart, ...]], ...], list[str]]:
    """Notes and native charts per slide; a deck LibreOffice rendered but python-pptx cannot read
    keeps its render and loses only these (warned)."""
    from caprl_index.sources.pptx_native import deck_native

    try:
        extra = deck_native(str(path), figures)
    except CorruptFile as exc:
        return (), [f"{path}: chart data and notes not read ({exc.reason})"]
    warnings = []
    if len(extra) != page_count:
        warnings.append(f"{path}: {len(extra)} slides in the deck but {page_count} pages rendered")
        extra = extra[:page_count] if len(extra) > page_count else extra
    return extra, warnings


# --- package checks ------------------------------------------------------------------------------


def check_package(path: Path, suffix: str, settings: Settings) -> None:
    """Refuse empty, oversized, encrypted and zip-bomb decks before any parser touches them."""
    size = path.stat().st_size
    if size == 0:
        raise CorruptFile(str(path), "the file is empty")
    if size > settings.max_file_mb * (1 << 20):
        raise CorruptFile(
            str(path),
            f"{size / (1 << 20):.0f} MB is over CAPRL_MAX_FILE_MB={settings.max_file_mb:g}; raise it",
        )
    if _starts_with(path, _OLE_MAGIC):
        _check_ole(path)
    elif zipfile.is_zipfile(path):
        _check_zip(path, suffix)
    elif suffix in (".pptx", ".odp"):
        raise CorruptFile(str(path), "not a zip package (truncated or not a deck); re-save or re-download it")


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(magic)) == magic


def _check_ole(path: Path) -> None:
    # Office wraps a password-protected .pptx in an OLE container holding an "EncryptedPackage"
    # stream; an encrypted .ppt has an "EncryptedSummary" stream. Stream names can sit anywhere.
    if _contains(path, (_ENCRYPTED_OOXML, _ENCRYPTED_PPT)):
        raise EncryptedFile(
            str(path),
            "the deck is password-protected; remove the password (File > Info > Protect Presentation) "
            "and save it again",
        )


def _contains(path: Path, needles: tuple[bytes, ...], block: int = 1 << 22) -> bool:
    overlap = max(len(n) for n in needles)
    tail = b""
    with path.open("rb") as fh:
        while chunk := fh.read(block):
            window = tail + chunk
            if any(n in window for n in needles):
                return True
            tail = window[-overlap:]
    return False


def _check_zip(path: Path, suffix: str) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = {info.filename for info in infos}
            manifest = _read_member(archive, "META-INF/manifest.xml") if suffix == ".odp" else b""
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CorruptFile(str(path), f"damaged zip package ({exc}); re-save or re-download it") from None
    _check_zip_sizes(path, infos)
    if suffix == ".pptx" and "[Content_Types].xml" not in names:
        raise CorruptFile(str(path), "a zip file but not a PowerPoint package (no [Content_Types].xml)")
    if b"encryption-data" in manifest or any(info.flag_bits & 0x1 for info in infos):
        raise EncryptedFile(str(path), "the deck is password-protected; save it again without a password")


def _read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return b""
    return archive.read(info) if info.file_size < (4 << 20) else b""


def _check_zip_sizes(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    total = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos) or 1
    if len(infos) > MAX_ZIP_ENTRIES:
        reason = f"{len(infos)} parts in the package (limit {MAX_ZIP_ENTRIES}): not a real deck"
        raise CorruptFile(str(path), reason)
    if total > MAX_UNCOMPRESSED or (total > _RATIO_FLOOR and total / packed > MAX_RATIO):
        raise CorruptFile(
            str(path),
            f"expands to {total / (1 << 20):.0f} MB from {packed / (1 << 20):.1f} MB (a zip bomb?); refused",
        )


# --- LibreOffice ---------------------------------------------------------------------------------


def convert_to_pdf(path: Path, workdir: Path, soffice: str, timeout: float) -> Path:
    """Convert a deck to PDF inside `workdir` with an isolated, macro-less LibreOffice profile."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    profile = workdir / "lo-profile"
    (profile / "user").mkdir(parents=True, exist_ok=True)
    (profile / "user" / "registrymodifications.xcu").write_text(_PROFILE_SETTINGS, encoding="utf-8")
    outdir = workdir / "pdf"
    outdir.mkdir(exist_ok=True)
    # A fixed name keeps odd file names (leading "-", newlines) away from soffice's command line.
    source = _link_input(path, workdir / f"deck{path.suffix.lower()}")
    command = [
        soffice,
        f"-env:UserInstallation={profile.as_uri()}",
        "--headless",
        "--invisible",
        "--norestore",
        "--nolockcheck",
        "--nodefault",
        "--nologo",
        "--nofirststartwizard",
        "--convert-to",
        PDF_FILTER,
        "--outdir",
        str(outdir),
        str(source),
    ]
    output = _run(command, str(path), timeout)
    pdf = outdir / "deck.pdf"
    if not pdf.is_file() or pdf.stat().st_size == 0:
        raise CorruptFile(str(path), f"LibreOffice could not convert it: {_last_line(output)}")
    return pdf


def _link_input(path: Path, link: Path) -> Path:
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    try:
        link.symlink_to(path.resolve())
    except OSError:
        shutil.copyfile(path, link)
    return link


def _run(command: list[str], name: str, timeout: float) -> str:
    """Run soffice in its own process group; on timeout kill the group (soffice.bin included)."""
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:  # LibreOffice is broken, not the deck: one message for the run
        raise ConfigError(f"cannot start LibreOffice ({command[0]}): {exc}; fix CAPRL_SOFFICE or PATH") from None
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CorruptFile(
            name,
            f"LibreOffice did not finish converting in {timeout:g} s; raise CAPRL_SOFFICE_TIMEOUT or "
            "convert to PDF yourself",
        ) from None
    finally:
        _kill_group(proc)  # stray helpers of a finished soffice must not outlive it
    return output.decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
        proc.communicate(timeout=10)


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip() and "javaldx" not in line]
    return lines[-1] if lines else "no output (exit without a PDF)"


def _pdf_page_count(pdf: Path, name: str) -> int:
    import pymupdf

    try:
        with pymupdf.open(pdf) as doc:
            return int(doc.page_count)
    except Exception as exc:  # pymupdf raises several types for a broken file
        raise CorruptFile(name, f"LibreOffice wrote an unreadable PDF ({exc})") from None
