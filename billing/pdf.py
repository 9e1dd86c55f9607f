"""The invoice as a PDF document: what a UK invoice must show, and the two fees apart.

Every name prints in the script it is written in. Text is set in Noto Sans, embedded as a
subset (only the glyphs a document uses), with fallback faces for what it lacks: Noto Sans
Arabic and Noto Sans Devanagari (shaped with HarfBuzz: joined, reordered, right to left) and,
when one is installed, a CJK font (the PDF_CJK_FONT setting). A character no face covers
prints as the font's box, still mapped to its Unicode so that search and copy find it, and
the document logs one line naming the script (never the text).

What it costs, and how it is kept down (README, "Speed"):
- fpdf2 subsets and writes each font a document uses, for every document: ~6 ms a font, plus
  more the more glyphs the font has (Noto Sans has 4,515). So a document's copy of a face
  gets, before fpdf2 sees it, a small font of just the glyphs the document used, made once
  per set of glyphs and kept (_embeddable).
- And Noto Sans is one face holding both weights: its bold glyphs sit at private-use code
  points (_BOLD + the character); Document prints bold text there, mapped back to the real
  characters for search and copy. Bold in the fallback faces prints regular.
- The fonts ship variable (one file for all weights); the static faces are made from them
  once and kept in instance/fonts/ (a few seconds, the first time), parsed once per process,
  and each document gets a copy of the parsed face.

`new_document()` sets up a Document with these fonts, for other documents to reuse.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import logging
import os
import re
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Optional

from flask import current_app, has_app_context
from fontTools import subset as ft_subset
from fontTools import version as fonttools_version
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import TextEmphasis
from fpdf.fonts import Glyph, SubsetMap, TTFFont
from fpdf.unicode_script import get_unicode_script

from .config import DEBIAN_CJK_FONT
from .models import Invoice
from .money_format import show
from .pricing import PRODUCT
from .states import TAKES_PAYMENT, InvoiceStatus

log = logging.getLogger("billing.pdf")

FONT = "sans"  # the family every document sets (Noto Sans), regular and bold ("B")

Ranges = tuple[tuple[int, int], ...]
_ARABIC: Ranges = ((0x600, 0x6FF), (0x750, 0x77F), (0x870, 0x8FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF),
                   (0x10EC0, 0x10EFF))
# Noto Sans has some Devanagari too, but not the shaping a name needs: Noto Sans Devanagari prints it.
_DEVANAGARI: Ranges = ((0x900, 0x97F), (0x1CD0, 0x1CFF), (0xA8E0, 0xA8FF))
# Noto Sans's bold glyphs: at _BOLD + the character, in Supplementary Private Use Area-A. Text
# that arrives holding such a character prints U+FFFD instead (it means nothing to anyone else).
_BOLD = 0xF0000
_BOLD_END = 0xFFFFE
_CLASHES = re.compile(f"[{chr(_BOLD)}-{chr(_BOLD_END - 1)}]")
# Embedded, regular and bold, by every document, used or not (about 10 KB): most documents
# then embed one of a few fonts, each made once (_embeddable).
_ALWAYS = tuple(range(0x20, 0x7F)) + tuple(map(ord, "£€–—‘’“”…•"))
# Zero-width joiners belong to the script around them (Persian, Hindi): they stay in its face.
_JOINERS = frozenset("\u200c\u200d")

_VARIATION_TABLES = ("fvar", "gvar", "cvar", "avar", "HVAR", "MVAR", "VVAR", "STAT")
_LAYOUT_TABLES = ("GSUB", "GPOS", "GDEF")
_RECIPE = 1  # bump when the way faces are made changes: the kept files are then made anew


def _within(code: int, ranges: Ranges) -> bool:
    return any(low <= code <= high for low, high in ranges)


# --- Faces: made once (kept on disk), parsed once per process -----------------------------------

@dataclass
class _Face:
    """A parsed face, shared by the documents of this process; each gets a copy (`_attach`)."""
    key: str  # fpdf2's font key
    proto: TTFFont
    data: bytes | None  # the font file, or None to read it from `path` (a large CJK file)
    path: str | None = None
    number: int = 0  # face index in a .ttc/.otc collection
    shaping: bool = False  # its script needs HarfBuzz (joining, conjuncts, right to left)
    always: frozenset[str] = frozenset()  # glyphs embedded whether used or not (see _embeddable)

    @property
    def cmap(self) -> dict[int, str]:
        return self.proto.cmap


def _cache_dir() -> Path | None:
    return Path(current_app.instance_path) / "fonts" if has_app_context() else None


def _made(name: str, recipe: tuple[Any, ...], make: Callable[[], bytes]) -> bytes:
    """A face's bytes: read from instance/fonts/ when made before, else made (and kept there
    if the folder is writable; workers racing to make one write the same bytes)."""
    directory = _cache_dir()
    digest = hashlib.sha256(repr((_RECIPE, fonttools_version, recipe)).encode()).hexdigest()[:16]
    path = directory / f"{name}-{digest}.ttf" if directory else None
    if path is not None:
        try:
            return path.read_bytes()
        except OSError:
            pass
    data = make()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}")
            partial.write_bytes(data)
            os.replace(partial, path)
        except OSError:
            pass
    return data


def _source_recipe(path: Path) -> tuple[Any, ...]:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


def _noto(family: str) -> Path:
    import fontpkg  # the fontpkg-noto-sans* packages: fonts installed as Python dependencies

    return fontpkg.path(family)


def _make_static(source: Path, *, weight: int, keep: Callable[[int], bool] | None, layout: bool) -> TTFont:
    """A static face of the variable font `source` at `weight` (normal width), with the
    characters `keep` accepts (all when None), and its layout tables when `layout` (HarfBuzz
    needs them to shape; the PDF never does, and fpdf2 leaves them out of what it embeds)."""
    from fontTools.varLib import instancer

    font = TTFont(source, lazy=True)
    for tag in () if layout else _LAYOUT_TABLES:
        if tag in font:
            del font[tag]
    location = {"wght": weight, "wdth": 100}
    axes = {axis.axisTag: axis.defaultValue for axis in font["fvar"].axes} if "fvar" in font else {}
    at_default = all(axes.get(tag, value) == value for tag, value in location.items())
    if at_default:
        # The default instance's outlines and metrics are the font's own: drop the variations.
        for tag in _VARIATION_TABLES:
            if tag in font:
                del font[tag]
    if keep is not None:
        options = ft_subset.Options(notdef_outline=True, recommended_glyphs=True, glyph_names=True,
                                    layout_features=["*"] if layout else [])
        subsetter = ft_subset.Subsetter(options)
        subsetter.populate(unicodes=[code for code in font.getBestCmap() if keep(code)])
        subsetter.subset(font)
    if not at_default:
        font = instancer.instantiateVariableFont(
            font, {tag: location[tag] for tag in axes if tag in location}, static=True, updateFontNames=False)
    return font


def _saved(font: TTFont) -> bytes:
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def _with_bold(regular: TTFont, bold: TTFont) -> bytes:
    """One face holding both weights: `bold`'s glyphs renamed "<name>.bold", at _BOLD + their
    characters (fpdf2 embeds each font it is given apart, at a cost per font, not per glyph)."""
    from fontTools.ttLib.tables._c_m_a_p import CmapSubtable

    regular_order = regular.getGlyphOrder()
    renamed = {name: f"{name}.bold" for name in bold.getGlyphOrder()}
    glyf, hmtx = regular["glyf"], regular["hmtx"]
    for name in bold.getGlyphOrder():
        glyph = bold["glyf"][name]
        if glyph.isComposite():
            for component in glyph.components:
                component.glyphName = renamed[component.glyphName]
        glyf.glyphs[renamed[name]] = glyph
        hmtx.metrics[renamed[name]] = bold["hmtx"].metrics[name]
    order = regular_order + [renamed[name] for name in bold.getGlyphOrder()]
    regular.setGlyphOrder(order)
    glyf.setGlyphOrder(order)
    mapping = dict(regular.getBestCmap())
    mapping.update({_BOLD + code: renamed[name] for code, name in bold.getBestCmap().items()
                    if _BOLD + code < _BOLD_END})
    table = CmapSubtable.newSubtable(12)  # code points beyond the BMP need format 12
    table.platformID, table.platEncID, table.language, table.cmap = 3, 10, 0, mapping
    regular["cmap"].tables = [t for t in regular["cmap"].tables if (t.platformID, t.platEncID) != (3, 10)] + [table]
    return _saved(regular)


def _face(key: str, *, data: bytes | None = None, path: str | None = None, number: int = 0,
          name: str | None = None, shaping: bool = False, always: tuple[int, ...] = (),
          drop: frozenset[str] = frozenset()) -> _Face:
    source: Any = io.BytesIO(data) if data is not None else Path(path or "")
    proto = TTFFont(FPDF(), source, key, "", None, None, None, number)
    if name:
        proto.name = name  # fpdf2 names each subset "MPDFAA+<name>": keep the faces apart
    if drop:
        proto.cmap = {code: glyph for code, glyph in proto.cmap.items() if chr(code) not in drop}
    proto.missing_glyphs = []
    try:
        import uharfbuzz as hb
        from fpdf.fonts import HarfBuzzFont

        blob = hb.Blob(data) if data is not None else hb.Blob.from_file_path(path)
        proto._hbfont = HarfBuzzFont(hb.Face(blob, number))
    except ImportError:  # shaping is then off (set_text_shaping says why)
        pass
    # Documents share this parse and only read it (shaping reads names and advances): read now
    # what fontTools would otherwise read lazily, so that no two threads ever do it at once.
    proto.ttfont.getGlyphOrder()
    proto.ttfont["hmtx"]
    glyphs = frozenset(proto.cmap[code] for code in always if code in proto.cmap)
    return _Face(key, proto, data, path, number, shaping, glyphs)


def _core() -> _Face:
    """Noto Sans (Latin, Greek, Cyrillic), regular and bold in one face."""
    source = _noto("Noto Sans")

    def keep(code: int) -> bool:
        return not _within(code, _DEVANAGARI)

    data = _made("sans", (_source_recipe(source), _DEVANAGARI), lambda: _with_bold(
        _make_static(source, weight=400, keep=keep, layout=False),
        _make_static(source, weight=700, keep=keep, layout=False)))
    return _face(FONT, data=data, name="NotoSans", always=_ALWAYS + tuple(_BOLD + code for code in _ALWAYS),
                 drop=_JOINERS)


def _noto_script(key: str, family: str, *, name: str) -> _Face:
    """Noto Sans Arabic or Devanagari, regular, whole and with its layout tables (HarfBuzz
    shapes with the same font that fpdf2 subsets)."""
    source = _noto(family)
    data = _made(key, (_source_recipe(source),),
                 lambda: _saved(_make_static(source, weight=400, keep=None, layout=True)))
    return _face(key, data=data, name=name, shaping=True)


def _cjk(spec: str) -> _Face:
    path, _, number = spec.partition("#")
    return _face("cjk", path=path, number=int(number or 0))


@dataclass(frozen=True)
class _Source:
    """Where a character goes: the face that prints it, made the first time one needs it."""
    name: str
    ranges: Ranges | None  # the characters sent to it; None: any it has
    make: Callable[[], _Face]


_SOURCES = (
    _Source("arabic", _ARABIC, lambda: _noto_script("arabic", "Noto Sans Arabic", name="NotoSansArabic")),
    _Source("devanagari", _DEVANAGARI,
            lambda: _noto_script("devanagari", "Noto Sans Devanagari", name="NotoSansDevanagari")),
)

_faces: dict[str, _Face | None] = {}
_faces_lock = threading.RLock()  # held while a face is made
_use_lock = threading.Lock()  # held while a shared face is read lazily, or the kept subsets change


def _get(name: str, make: Callable[[], _Face], *, required: bool = False) -> _Face | None:
    """The face `name`, made once per process; a fallback face that can't be made (a CJK path
    that isn't a font) is logged once and left out, never failing a document."""
    if name in _faces:
        return _faces[name]
    with _faces_lock:
        if name not in _faces:
            try:
                _faces[name] = make()
            except Exception as error:
                if required:
                    raise
                log.error("pdf: a fallback font can't be used", extra={"fields": {
                    "font": name.partition(":")[0], "error": type(error).__name__}})
                _faces[name] = None
    return _faces[name]


def _core_face() -> _Face:
    face = _get(FONT, _core, required=True)
    assert face is not None
    return face


def prepare_fonts() -> None:
    """Make and keep (instance/fonts/) every Noto face now, so no PDF waits for one (make run)."""
    _core_face()
    for source in _SOURCES:
        _get(source.name, source.make)


def cjk_font_setting() -> str | None:
    """The CJK face to use: the PDF_CJK_FONT setting, else Debian's fonts-noto-cjk if installed."""
    if has_app_context() and "PDF_CJK_FONT" in current_app.config:
        return current_app.config["PDF_CJK_FONT"]
    return DEBIAN_CJK_FONT if os.path.exists(DEBIAN_CJK_FONT) else None


# --- Documents ------------------------------------------------------------------------------

def _unbold(code: int) -> int:
    return code - _BOLD if _BOLD <= code < _BOLD_END else code


class _Subset(SubsetMap):
    """fpdf2 silently drops a character its font lacks: print the font's box (.notdef) instead,
    mapped to the character so that search and copy still find it. And map the core's bold
    glyphs to their real characters."""

    @functools.cache  # fpdf2 clears it (`get_glyph.cache_clear()`) when it writes the font
    def get_glyph(self, glyph: Optional[int] = None, unicode: Optional[int | tuple[int, ...]] = None,
                  glyph_name: Optional[str] = None, glyph_width: Optional[int] = None) -> Optional[Glyph]:
        found = SubsetMap.get_glyph.__wrapped__(self, glyph, unicode, glyph_name, glyph_width)  # uncached
        if found is None and isinstance(unicode, int) and unicode > 0x20:
            return Glyph(0, (_unbold(unicode),), ".notdef", int(self.font.cw[unicode]))
        if found is not None and isinstance(found.unicode, tuple) and any(_BOLD <= u < _BOLD_END for u in found.unicode):
            return Glyph(found.glyph_id, tuple(map(_unbold, found.unicode)), found.glyph_name, found.glyph_width)
        return found


class Document(FPDF):
    """An A4 document set in Noto Sans (FONT, regular and "B"), fallback faces attached as its
    text needs them. Print text with cell() and multi_cell(): they choose faces and shaping."""

    def __init__(self, title: str, author: str, *, log_fields: dict[str, Any] | None = None,
                 cjk_font: str | None = None) -> None:
        super().__init__(format="A4")
        self.log_fields = {"document": title, **(log_fields or {})}
        self._cjk = cjk_font
        self._bold = False
        self._attached: dict[str, _Face] = {}
        self._fallbacks: list[str] = []
        self._routes: dict[str, _Face | None] = {}
        self._last_fallback: _Face | None = None
        self._uncovered: set[int] = set()
        self._core = _core_face()
        self._bold_map = {code - _BOLD: code for code in self._core.cmap if code >= _BOLD}
        self._attach(self._core)
        self.set_title(title)
        self.set_author(author)
        self.alias_nb_pages()
        self.set_font(FONT, size=10)

    def set_font(self, family: Optional[str] = None, style: str | TextEmphasis = "", size: float = 0) -> None:
        """Bold in FONT is the core's bold glyphs (see the module's docstring)."""
        style = style.style if isinstance(style, TextEmphasis) else style.upper()
        self._bold = "B" in style and (family or self.font_family or "").lower() == FONT
        super().set_font(family, style.replace("B", "") if self._bold else style, size)

    def _attach(self, face: _Face) -> None:
        """This document's copy of a parsed face: the parse is shared, the subset its own."""
        if face.key in self._attached:
            return
        font = copy.copy(face.proto)
        font.i = len(self.fonts) + 1
        font.desc = copy.copy(face.proto.desc)  # fpdf2 writes the document's object ids into it
        # The parsed font is only read until output(), which gives the copy a font of its own
        # (_embeddable) for fpdf2 to subset and write.
        font.ttfont = face.proto.ttfont
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font.subset = _Subset(font)
        self.fonts[face.key] = font
        self._attached[face.key] = face
        if face is not self._core:
            self._fallbacks.append(face.key)

    def _route(self, char: str) -> _Face | None:
        code = ord(char)
        sources = list(_SOURCES)
        if self._cjk:
            spec = self._cjk
            sources.append(_Source(f"cjk:{spec}", None, lambda: _cjk(spec)))
        for source in sources:
            if source.ranges is not None and not _within(code, source.ranges):
                continue
            face = _get(source.name, source.make)
            if face is not None and code in face.cmap:
                return face
        return None

    def _face_for(self, char: str) -> _Face | None:
        last = self._last_fallback
        if char in _JOINERS and last is not None and ord(char) in last.cmap:
            return last
        if char not in self._routes:
            self._routes[char] = self._route(char)
        face = self._routes[char]
        if face is not None:
            self._attach(face)
            self._last_fallback = face
        return face

    def get_fallback_font(self, char: str, style: str = "") -> Optional[str]:
        face = self._face_for(char)
        return face.key if face is not None and face.key != self.current_font.fontkey else None

    def _text(self, text: Any) -> str:
        text = unicodedata.normalize("NFC", "" if text is None else str(text))
        if _CLASHES.search(text):
            text = _CLASHES.sub("\ufffd", text)
        return text.translate(self._bold_map) if self._bold and self.current_font is self.fonts[FONT] else text

    def _prepare(self, text: Any) -> str:
        """Ready `text` for the current font: composed (NFC), bold mapped, the faces it needs
        attached, and shaping on only when one of them needs it (fpdf2 is much faster without)."""
        text = self._text(text)
        cmap = self.current_font.cmap
        lacking = [char for char in set(text) if ord(char) not in cmap and char not in "\r\n"]
        shaping = False
        if lacking:
            self._last_fallback = None
            for char in sorted(lacking, key=text.index):
                face = self._face_for(char)
                if face is None and char not in _JOINERS:  # a joiner with no script around it: the core has it
                    self._uncovered.add(ord(char))
                elif face is not None:
                    shaping = shaping or face.shaping
            self._last_fallback = None
        # fpdf2 looks for fallback faces only while this list isn't empty
        self._fallback_font_ids = list(self._fallbacks) if lacking else []
        if shaping:
            self.set_text_shaping(True)
        else:
            self.text_shaping = None
        return text

    def cell(self, w: Optional[float] = None, h: Optional[float] = None, text: Any = "", *args: Any,
             **kwargs: Any) -> bool:
        result = super().cell(w, h, self._prepare(text), *args, **kwargs)
        self._after_fallback()
        return result

    def multi_cell(self, w: float, h: Optional[float] = None, text: Any = "", *args: Any, **kwargs: Any) -> Any:
        result = super().multi_cell(w, h, self._prepare(text), *args, **kwargs)
        self._after_fallback()
        return result

    def get_string_width(self, s: str, normalized: bool = False, markdown: bool = False) -> float:
        if self._bold and not normalized:  # fpdf2's own calls pass text already prepared
            s = unicodedata.normalize("NFC", s).translate(self._bold_map)
        return super().get_string_width(s, normalized, markdown)

    def _after_fallback(self) -> None:
        """fpdf2 2.8.9 sets the page's font inside the q…Q of a line that starts in a fallback
        face, so the restore drops it, yet it believes the font set: the next line in the same
        font would print with whatever font came before. Have the next line set it again."""
        if self._fallback_font_ids:
            self.current_font_is_set_on_page = False

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(FONT, size=8)
        self.set_text_color(110)
        self.cell(0, 10, f"Page {self.page_no()}/{{nb}}", align="C")

    def output(self, *args: Any, **kwargs: Any) -> Any:
        for key, face in self._attached.items():
            _embeddable(self.fonts[key], face)
        if self._uncovered:
            # One line per document, ids and scripts only: never the text, which is a name.
            log.warning("pdf: no font has some characters; they print as boxes", extra={"fields": {
                **self.log_fields,
                "scripts": sorted({get_unicode_script(chr(code)).name.lower() for code in self._uncovered}),
                "characters": len(self._uncovered),
            }})
            self._uncovered = set()
        return super().output(*args, **kwargs)


_subsets: OrderedDict[tuple[int, frozenset[str]], bytes] = OrderedDict()
_SUBSETS_KEPT = 128


def _embeddable(font: TTFFont, face: _Face) -> None:
    """Give the document's copy of `face` a small TrueType font of just the glyphs it used (and
    the face's `always`), which fpdf2 then subsets and writes. fpdf2 would otherwise subset the
    whole face, which costs more the more glyphs it has, for every document; and it would write
    a CFF face (a CJK .otf/.ttc) with an embedded CMap as its encoding, which some readers
    (pypdf) don't decode. Each glyph set's font is made once and kept."""
    used = frozenset(glyph.glyph_name for glyph, _ in font.subset.items() if glyph is not None) | face.always
    key = (id(face), used)  # faces live as long as the process (_faces)
    with _use_lock:  # the parsed face is shared, and fontTools reads glyphs lazily
        data = _subsets.get(key)
        if data is None:
            data = _subsets[key] = _glyphs_font(face.proto, used)
            while len(_subsets) > _SUBSETS_KEPT:
                _subsets.popitem(last=False)
        else:
            _subsets.move_to_end(key)
    font.ttfont = TTFont(io.BytesIO(data), recalcTimestamp=False, recalcBBoxes=False, lazy=True)
    font.is_cff = font.is_cid_keyed = False
    font.cff_ros = None


def _glyphs_font(proto: TTFFont, names: frozenset[str]) -> bytes:
    """A TrueType font of the glyphs `names` of `proto`'s font, with their names (fpdf2 finds
    them by name) and advances. A TrueType face's glyphs are copied as they are stored; a CFF
    face's outlines are converted to quadratic curves."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import newTable
    from fontTools.ttLib.tables._g_l_y_f import Glyph as TTGlyph

    source = proto.ttfont
    outlines: dict[str, Any] = {}
    if proto.is_cff:
        glyph_set = source.getGlyphSet()
        for name in names | {".notdef"}:
            pen = TTGlyphPen(None)
            glyph_set[name].draw(Cu2QuPen(pen, max_err=1.0, reverse_direction=True))
            outlines[name] = pen.glyph()
    else:
        glyf = source["glyf"]
        pending = list(names | {".notdef"})
        while pending:  # a composite glyph needs its components
            name = pending.pop()
            if name not in outlines:
                stored = glyf.glyphs[name]
                if hasattr(stored, "data") and not stored.isComposite():
                    outlines[name] = TTGlyph(stored.data)
                else:  # its components are stored by number: in the new font they have new numbers
                    outlines[name] = copy.deepcopy(stored)  # expanding and compiling change a glyph: a copy
                    outlines[name].expand(glyf)
                    pending.extend(outlines[name].getComponentNames(glyf))
    order = [".notdef", *sorted(set(outlines) - {".notdef"})]
    builder = FontBuilder(source["head"].unitsPerEm, isTTF=True)
    font = builder.font
    builder.setupGlyphOrder(order)
    builder.setupCharacterMap({code: name for code, name in proto.cmap.items() if name in outlines})
    if proto.is_cff:
        builder.setupGlyf({name: outlines[name] for name in order})
    else:
        # The stored glyphs, written as they are: their bounds hold, so are not computed again,
        # and the face's own bounds and maxima (for all its glyphs) stand for this font's.
        font.recalcBBoxes = False
        font["loca"], font["glyf"] = newTable("loca"), newTable("glyf")
        font["glyf"].glyphs, font["glyf"].glyphOrder = {name: outlines[name] for name in order}, order
        for table, fields in (("head", ("xMin", "yMin", "xMax", "yMax")), ("maxp", (
                "maxPoints", "maxContours", "maxCompositePoints", "maxCompositeContours", "maxZones",
                "maxTwilightPoints", "maxStorage", "maxFunctionDefs", "maxInstructionDefs", "maxStackElements",
                "maxSizeOfInstructions", "maxComponentElements", "maxComponentDepth"))):
            for field in fields:
                setattr(font[table], field, getattr(source[table], field))
    builder.setupHorizontalMetrics({name: source["hmtx"][name] for name in order})
    hhea, os2 = source["hhea"], source["OS/2"]
    builder.setupHorizontalHeader(ascent=hhea.ascent, descent=hhea.descent)
    builder.setupOS2(sTypoAscender=os2.sTypoAscender, sTypoDescender=os2.sTypoDescender,
                     usWinAscent=os2.usWinAscent, usWinDescent=os2.usWinDescent, usWeightClass=os2.usWeightClass)
    builder.setupPost()
    builder.setupNameTable({"familyName": proto.name, "styleName": "Regular"})
    return _saved(font)


def text(value: Any) -> str:
    """Text for a cell: None prints as nothing (Document prepares the rest)."""
    return "" if value is None else str(value)


def new_document(title: str, author: str, *, log_fields: dict[str, Any] | None = None
                 ) -> tuple[Document, Callable[[Any], str], Callable[..., None]]:
    """A Document and two helpers: `text(value)` for a cell's text and `font(style, size)`
    (style "" or "B") to set FONT. A character no font has is logged once, with the title and
    `log_fields` (ids only)."""
    pdf = Document(title, author, log_fields=log_fields, cjk_font=cjk_font_setting())

    def font(style: str = "", size: float = 10) -> None:
        pdf.set_font(FONT, style, size)

    return pdf, text, font


def supplier(pdf: Document, text: Callable[[Any], str], font: Callable[..., None], clinic: dict[str, str]) -> None:
    """The clinic's name, address and contact at the top of every document it issues, and its
    VAT registration and company numbers when it has them (CLINIC_VAT_NUMBER, CLINIC_COMPANY_NUMBER)."""
    font("B", 16)
    pdf.cell(0, 8, text(clinic["name"]), new_x="LMARGIN", new_y="NEXT")
    font("", 9)
    pdf.multi_cell(100, 4.5, text(clinic["address"]), new_x="LMARGIN", new_y="NEXT")
    if clinic.get("contact"):
        pdf.cell(0, 4.5, text(clinic["contact"]), new_x="LMARGIN", new_y="NEXT")
    numbers = [f"{label} {clinic[key]}" for key, label in (("vat_number", "VAT registration number"),
                                                           ("company_number", "Company number")) if clinic.get(key)]
    if numbers:
        pdf.cell(0, 4.5, text(" · ".join(numbers)), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def clinic_details() -> dict[str, str]:
    """What documents print about the clinic, from its settings (CLINIC_*)."""
    return {key: current_app.config.get(f"CLINIC_{key.upper()}")
            for key in ("name", "address", "contact", "vat_number", "company_number")}


def day(value: date | datetime | None) -> str:
    if value is None:
        return "-"
    return f"{value.day} {value:%B %Y}"


# --- The invoice --------------------------------------------------------------------------

def render_invoice_pdf(invoice: Invoice, clinic: dict[str, str], *, issued_on: date | None = None,
                       payment_url: str | None = None, payment_instructions: str | None = None) -> bytes:
    cur = invoice.currency
    pdf, text, font = new_document(f"Invoice {invoice.number or 'draft'}", clinic["name"],
                                   log_fields={"invoice_id": invoice.id, "invoice_number": invoice.number})
    pdf.add_page()
    pdf.set_margins(18, 18, 18)

    # Supplier and document
    supplier(pdf, text, font, clinic)
    font("B", 14)
    title = f"Invoice {invoice.number}" if invoice.number else "Draft invoice (not yet issued)"
    if invoice.status == InvoiceStatus.VOID:
        title += " - VOID"
    pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    font("", 10)
    rows = [("Invoice date", day(issued_on)), ("Date of supply", day(invoice.service_date)),
            ("Due date", day(invoice.due_date))]
    if invoice.booking_id:
        rows.append(("Booking reference", invoice.booking_id))
    for label, value in rows:
        pdf.cell(35, 5.5, label)
        pdf.cell(0, 5.5, text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    # Customer and payer
    y = pdf.get_y()
    _party(pdf, font, "Patient", invoice.patient_name, invoice.patient_address, 18)
    bottom = pdf.get_y()
    if invoice.bill_to:
        pdf.set_xy(110, y)
        _party(pdf, font, "Bill to", invoice.bill_to.get("name"), invoice.bill_to.get("address"), 110,
               reference=invoice.bill_to.get("reference"))
        bottom = max(bottom, pdf.get_y())
    pdf.set_y(max(bottom, y + 18))
    pdf.ln(4)

    # Lines: the product and the service, always apart
    font("B", 10)
    pdf.set_fill_color(235, 238, 242)
    for heading, width, align in (("Description", 104, "L"), ("Quantity", 22, "R"), ("Tax", 24, "R"),
                                  ("Amount", 24, "R")):
        pdf.cell(width, 7, heading, align=align, fill=True)
    pdf.ln()
    for line in invoice.lines:
        _line(pdf, font, line, cur)
    pdf.ln(2)

    # Totals
    rows = [("Subtotal", invoice.subtotal), ("Tax", invoice.tax), ("Total", invoice.total)]
    if invoice.amount_paid:
        rows.append(("Paid", -invoice.amount_paid))
    if invoice.amount_refunded:
        rows.append(("Refunded", invoice.amount_refunded))
    if invoice.credit_applied:  # the part of its credit notes that reduced what was due
        rows.append(("Credit notes", -invoice.credit_applied))
    rows.append(("Amount due", invoice.amount_due))
    for label, amount in rows:
        font("B" if label in ("Total", "Amount due") else "", 10)
        pdf.cell(150, 6, label, align="R")
        pdf.cell(24, 6, show(amount, cur), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    # What is not included
    font("", 9)
    if invoice.excluded_items:
        font("B", 9)
        pdf.cell(0, 5, "Not included in this invoice", new_x="LMARGIN", new_y="NEXT")
        font("", 9)
        for item in invoice.excluded_items:
            pdf.multi_cell(0, 4.5, text(f"- {item['description']}: {item['reason']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 4.5, text(invoice.statement), new_x="LMARGIN", new_y="NEXT")
    if payment_instructions and invoice.amount_due > 0 and invoice.status in TAKES_PAYMENT:
        pdf.ln(3)
        font("B", 10)
        pdf.cell(0, 5, "How to pay", new_x="LMARGIN", new_y="NEXT")
        font("", 9)
        pdf.multi_cell(0, 4.5, text(payment_instructions), new_x="LMARGIN", new_y="NEXT")
        pdf.multi_cell(0, 4.5, text(f"Please quote {invoice.number} as the payment reference."),
                       new_x="LMARGIN", new_y="NEXT")
    if payment_url and invoice.amount_due > 0 and invoice.status in TAKES_PAYMENT:
        pdf.ln(3)
        font("B", 10)
        pdf.cell(0, 5, "Pay online", new_x="LMARGIN", new_y="NEXT")
        font("", 9)
        pdf.cell(0, 5, payment_url, link=payment_url, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _party(pdf: Document, font: Callable[..., None], label: str, name: str | None, address: str | None,
           x: int, *, reference: str | None = None) -> None:
    pdf.set_x(x)
    font("B", 10)
    pdf.cell(80, 5, label, new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(x)
    font("", 10)
    pdf.cell(80, 5, text(name), new_x="LMARGIN", new_y="NEXT")
    if address:
        pdf.set_x(x)
        pdf.multi_cell(80, 4.5, address.replace("\r\n", "\n"), new_x="LMARGIN", new_y="NEXT")
    if reference:
        pdf.set_x(x)
        pdf.multi_cell(80, 5, text(f"Your reference: {reference}"), new_x="LMARGIN", new_y="NEXT")


def _line(pdf: Document, font: Callable[..., None], line: dict[str, Any], currency: str) -> None:
    font("", 10)
    quantity = f"{line['quantity']} {line['unit']}" if line["unit"] == "g" else line["quantity"]
    tax = f"{line['tax_label']}" if line["tax_rate"] in ("0",) else f"{line['tax_rate']}% {show(line['tax_amount'], currency)}"
    pdf.cell(104, 6, text(line["description"]))
    pdf.cell(22, 6, text(quantity), align="R")
    pdf.cell(24, 6, tax, align="R")
    pdf.cell(24, 6, show(line["amount"], currency), align="R", new_x="LMARGIN", new_y="NEXT")
    font("", 8.5)
    pdf.set_text_color(80)
    if line["category"] == PRODUCT:
        vials = ", ".join(
            f"{v['count']} x {v['grams']} g" + (f" at {show(v['unit_amount'], currency)}" if v.get("unit_amount") is not None else "")
            for v in line["vials"])
        detail = f"Whole vials dispensed: {vials}. Dose {line['dose_grams']} g; unused {line['waste_grams']} g."
        if line.get("unit_amount") is not None:
            detail += f" Priced at {show(line['unit_amount'], currency)} per gram."
    else:
        detail = f"Infusion of {line['duration_minutes']} minutes."
    pdf.cell(4)
    pdf.multi_cell(100, 4, detail, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)
    pdf.ln(1)


def invoice_pdf(invoice: Invoice, base_url: str) -> tuple[str, bytes]:
    """The invoice's file name and PDF, as the API and the staff pages serve it: dated with its
    invoice date at the clinic, carrying its current payment link while it takes payment."""
    from .payment_links import current_link_url

    body = render_invoice_pdf(invoice, clinic_details(), issued_on=invoice.issued_on,
                              payment_url=current_link_url(invoice, base_url),
                              payment_instructions=current_app.config.get("PAYMENT_INSTRUCTIONS"))
    return f"{invoice.number or invoice.id}.pdf", body
