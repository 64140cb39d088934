"""Author-year citations, written the same way in the text and in the bibliography.

sphinxcontrib-bibtex's ``author_year`` style cites "[Goodfellow et al., 2016]" in the text while
pybtex's styles number the bibliography [1], [2], ... This extension gives every entry of the
bibliography the label "Goodfellow et al., 2016" ("Kingma and Welling, 2014" for two authors,
"Pearson, 1901" for one, the title when there is no author, "n.d." when there is no year), with
"a", "b", ... after the year where two works would get the same label ("Rumelhart et al., 1986a"),
and the text cites by that label: ``{cite}`` and ``{cite:p}`` write "[Rumelhart et al., 1986a]"
(several works: "[Bourlard and Kamp, 1988; Baldi and Hornik, 1989]"), ``{cite:t}`` writes
"Bricken et al. [2023]".

In ``_config.yml`` (``sphinx.config``)::

    bibtex_default_style: author_year          # the bibliography: pybtex's plain, these labels
    bibtex_reference_style: author_year_label  # the text: these labels
"""

from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass, field

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinxcontrib.bibtex.plugin import register_plugin as register_reference_style
from sphinxcontrib.bibtex.style.referencing import BracketStyle, GroupReferenceStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle
from sphinxcontrib.bibtex.style.referencing.basic_author_year import (
    BasicAuthorYearParentheticalReferenceStyle,
    BasicAuthorYearTextualReferenceStyle,
)
from sphinxcontrib.bibtex.style.referencing.extra_author import ExtraAuthorReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_empty import ExtraEmptyReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_label import ExtraLabelReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_year import ExtraYearReferenceStyle
from sphinxcontrib.bibtex.style.template import (
    entry_label,
    join,
    join2,
    node,
    post_text,
    pre_text,
    reference,
)

SEP = ", "  # between the authors and the year, in a label and in the text


def plain_text(latex: str) -> str:
    """BibTeX's LaTeX as plain text: ``S{\\o}nderby`` -> ``Sønderby``."""
    return Text.from_latex(latex).render_as("text")


def authors_of(entry) -> str:
    """ "Goodfellow et al.", "Kingma and Welling", "Pearson", or the title without authors."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [plain_text(" ".join(p.prelast_names + p.last_names)) for p in persons]
    if not names:
        return plain_text(entry.fields.get("title", entry.key))
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} et al."


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Authors, year", with a, b, ... after the year where two labels would be equal."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        plain = [
            f"{authors_of(e)}{SEP}{plain_text(e.fields.get('year', 'n.d.'))}" for e in entries
        ]
        count, seen = Counter(plain), Counter()
        for label in plain:
            if count[label] > 1:
                seen[label] += 1
                label += string.ascii_lowercase[seen[label] - 1]
            yield label


class AuthorYearStyle(PlainStyle):
    """pybtex's plain style (sorted by author, year, title) with author-year labels."""

    default_label_style = "author_year"


def split_label(label: str) -> tuple[str, str]:
    authors, _, year = label.rpartition(SEP)
    return authors, year


@node
def label_authors(children, data):
    """The authors part of the entry's label."""
    assert not children
    return Text(split_label(data["formatted_entry"].label)[0])


@node
def label_year(children, data):
    """The year part of the entry's label (with its a, b, ...)."""
    assert not children
    return Text(split_label(data["formatted_entry"].label)[1])


@dataclass
class LabelParentheticalStyle(BasicAuthorYearParentheticalReferenceStyle):
    """``{cite:p}``: "[Goodfellow et al., 2016]", the label itself."""

    def inner(self, role_name: str):
        return join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
            pre_text, reference[entry_label], post_text
        ]


@dataclass
class LabelTextualStyle(BasicAuthorYearTextualReferenceStyle):
    """``{cite:t}``: "Goodfellow et al. [2016]", both parts taken from the label."""

    def inner(self, role_name: str):
        return join(sep=self.text_reference_sep)[
            label_authors,
            join[
                self.bracket.left,
                join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
                    pre_text, reference[label_year], post_text
                ],
                self.bracket.right,
            ],
        ]


@dataclass
class AuthorYearLabelReferenceStyle(AuthorYearReferenceStyle):
    """sphinxcontrib-bibtex's author_year, with author and year read from the entry's label."""

    bracket_parenthetical: BracketStyle = field(default_factory=lambda: BracketStyle(sep="; "))

    def __post_init__(self):
        self.styles.extend(
            [
                LabelParentheticalStyle(
                    bracket=self.bracket_parenthetical,
                    person=self.person,
                    author_year_sep=self.author_year_sep,
                    pre_text_sep=self.pre_text_sep,
                    post_text_sep=self.post_text_sep,
                ),
                LabelTextualStyle(
                    bracket=self.bracket_textual,
                    person=self.person,
                    text_reference_sep=self.text_reference_sep,
                    pre_text_sep=self.pre_text_sep,
                    post_text_sep=self.post_text_sep,
                ),
                ExtraAuthorReferenceStyle(bracket=self.bracket_author, person=self.person),
                ExtraLabelReferenceStyle(bracket=self.bracket_label),
                ExtraYearReferenceStyle(bracket=self.bracket_year),
                ExtraEmptyReferenceStyle(),
            ]
        )
        GroupReferenceStyle.__post_init__(self)


register_plugin("pybtex.style.labels", "author_year", AuthorYearLabelStyle)
register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)
register_reference_style(
    "sphinxcontrib.bibtex.style.referencing", "author_year_label", AuthorYearLabelReferenceStyle
)


def setup(app):
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
