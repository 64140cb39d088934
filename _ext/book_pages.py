"""What every page carries besides its content: a footer, the edit button, a clean console.

- The footer names the licence and says how to cite the book, from ``_config.yml``: its title,
  author and copyright year, and the repository and ref of ``repository:`` (so that
  ``scripts/set_repository.py`` stays the one place that names the repository).
- "Edit this page" opens the file on the branch where changes are made (``book_edit_branch``,
  ``main``), not on ``repository.branch``, the tag readers install, which GitHub cannot edit.
- sphinx-thebe adds its configuration script twice to every page, and the second copy fails
  ("Identifier 'THEBE_JS_URL' has already been declared"): each script is kept once.
- pydata-sphinx-theme logs "Got invalid theme mode" on a reader's first visit unless a default
  mode is set: it is ``auto`` (the reader's system setting).
"""

from __future__ import annotations

from html import escape
from pathlib import Path


def config_inited(app, config) -> None:
    options = config.html_theme_options
    config.html_context.setdefault("default_mode", "auto")
    url = options.get("repository_url", "").rstrip("/")
    ref = options.get("repository_branch", "")
    licence_file = Path(app.srcdir) / config.book_license_file
    extra = options.get("extra_footer", "")
    options["extra_footer"] = footer(config, url, ref, licence_file.is_file()) + extra


def edit_on_the_edit_branch(app) -> None:
    """Point "edit this page" at ``book_edit_branch``.

    sphinx-book-theme copies ``repository.branch`` into ``html_context["github_version"]`` (and
    the other providers' ``*_version``) at builder-inited, priority 500; this runs after it.
    """
    context = app.config.html_context
    if app.config.book_edit_branch:
        for key in [k for k in context if k.endswith("_version") and k != "doc_path"]:
            context[key] = app.config.book_edit_branch


def footer(config, url: str, ref: str, licence_file_exists: bool) -> str:
    licence = escape(config.book_license)
    if licence and url and licence_file_exists:
        href = f"{url}/blob/{ref or 'main'}/{config.book_license_file}"
        licence = f'<a href="{escape(href)}">{licence}</a>'
    title = escape(config.html_title or config.project)
    cite = f"{escape(config.author)} ({escape(config.copyright)}). <em>{title}</em>"
    if ref:
        cite += f", version {escape(ref)}"
    if url:
        cite += f'. <a href="{escape(url)}">{escape(url)}</a>'
    cite = f'<p class="book-cite">How to cite this book: {cite}.</p>'
    return (f'<p class="book-licence">Licence: {licence}.</p>' if licence else "") + cite


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep each script of the page once (sphinx-thebe adds its configuration twice)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # the same script may come once with filename None and once with "" (body-only)
        filename = getattr(script, "filename", script) or ""
        attributes = getattr(script, "attributes", {})
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.add_config_value("book_edit_branch", "main", "html")
    app.add_config_value("book_license", "", "html")
    app.add_config_value("book_license_file", "LICENSE", "html")
    app.connect("config-inited", config_inited, priority=600)
    app.connect("builder-inited", edit_on_the_edit_branch, priority=600)
    app.connect("html-page-context", dedupe_scripts, priority=1000)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
