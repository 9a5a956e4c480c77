"""mkdocs hook: links from docs/ to files elsewhere in the repository become plain text on the site.

Such links work on a code host and in a checkout, but the site holds only docs/. A target that
does not exist in the repository is still an error, so the site build stays strict about them.
"""

from __future__ import annotations

import os
import re
from typing import Any

from mkdocs.exceptions import PluginError

_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s#]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs_dir = os.path.realpath(config["docs_dir"])
    repository = os.path.dirname(docs_dir)
    here = os.path.dirname(page.file.abs_src_path)

    def rewrite(match: re.Match) -> str:
        text, target = match.group(1), match.group(2)
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        path = os.path.realpath(os.path.join(here, target))
        if path == docs_dir or path.startswith(docs_dir + os.sep):
            return match.group(0)  # a page of the site: mkdocs checks it
        if not path.startswith(repository + os.sep) or not os.path.exists(path):
            raise PluginError(f"{page.file.src_path}: link to {target!r}: no such file")
        return text

    return _LINK.sub(rewrite, markdown)
