"""Checks of the repository's Markdown files that GitHub would not report: the README, the user
guide's pages in Documentation/ and the benchmark records (speed, issue 18's robustness) link to
each other's sections by anchor, and a
renamed or moved heading silently breaks such a link; a `|` inside a table cell silently splits the cell. Every in-document and relative
link is checked against the headings (GitHub's slug rule) and the files on disk, and every table
row against its header's cell count."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the user guide's reference pages, moved out of the README (every page of the folder, so a new one is checked)
GUIDE = sorted(str(page.relative_to(REPO)) for page in (REPO / "Documentation").glob("*.md"))
RECORDS = ["README.md", *GUIDE, "Testing/benchmarks/RESULTS.md", "Testing/benchmarks/ROBUSTNESS.md"]
DOCUMENTS = RECORDS + ["CardioScarLib/README.md", "CardioScarLib/ARCHITECTURE.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans removed (links there are not links)."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, without punctuation other than
    hyphens and underscores, spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = re.match(r"#{1,6} (.+)", line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        result.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return result


def links(path: Path) -> list[str]:
    found = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        found += LINK.findall(re.sub(r"`[^`]*`", "", line))
    return [link for link in found if not re.match(r"[a-z]+:", link)]  # not http(s):, mailto:


def test_the_slug_rule_matches_github_on_known_headings():
    assert github_slug("AHA 17-segment scar burden, transmurality and the bull's-eye") == \
        "aha-17-segment-scar-burden-transmurality-and-the-bulls-eye"
    assert github_slug("Figures on EMIDEC (`Testing/benchmarks/bench_attrivae.py`)") == \
        "figures-on-emidec-testingbenchmarksbench_attrivaepy"


def broken_links(source: Path) -> list[str]:
    """Each relative link of a Markdown file whose file does not exist, or whose #anchor names no
    heading of its Markdown target (the file itself for a bare #anchor)."""
    broken = []
    for link in links(source):
        target, _, anchor = link.partition("#")
        target_path = source if not target else (source.parent / target).resolve()
        if not target_path.exists():
            broken.append(f"{link}: no file {target_path}")
        elif anchor and target_path.suffix == ".md" and anchor not in anchors(target_path):
            broken.append(f"{link}: no heading with anchor #{anchor} in {target_path.name}")
    return broken


def test_the_check_reports_a_missing_file_and_a_moved_heading(tmp_path):
    """A section moved out of the README into a record leaves its old `#anchor` links dangling."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "RECORD.md").write_text("# Record\n\n## The fast preset's auto\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text("# Top\n\n## Performance\n\n[ok](#performance), [ok](bench/RECORD.md#the-fast-presets-auto), "
                      "[moved](#the-fast-presets-auto), [gone](bench/NONE.md), [wrong](bench/RECORD.md#performance)\n"
                      "`[code](#nowhere)`\n```\n[fenced](#nowhere)\n```\n", encoding="utf-8")
    assert [line.split(":")[0] for line in broken_links(readme)] == [
        "#the-fast-presets-auto", "bench/NONE.md", "bench/RECORD.md#performance"]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_relative_link_and_anchor_resolves(document):
    broken = broken_links(REPO / document)
    assert not broken, "\n".join(broken)


def test_every_guide_page_is_linked_from_the_readme():
    """The README is the guide read top to bottom; a page it does not link is a page nobody finds."""
    linked = {(REPO / link.partition("#")[0]).resolve() for link in links(REPO / "README.md")}
    assert GUIDE and not [page for page in GUIDE if (REPO / page).resolve() not in linked]


@pytest.mark.parametrize("document", RECORDS)
def test_every_table_row_has_its_header_cell_count(document):
    """GitHub splits a row at every unescaped `|`, also inside code spans (write `\\|` there)."""
    uneven, table = [], []
    for number, line in enumerate(prose_lines((REPO / document).read_text(encoding="utf-8")) + [""]):
        if line.startswith("|"):
            table.append(line)
            continue
        counts = [len(re.findall(r"(?<!\\)\|", row)) for row in table]
        uneven += [f"table ending before prose line {number}: {counts}"] if len(set(counts)) > 1 else []
        table = []
    assert not uneven, "\n".join(uneven)


#: A page of the guide named in code (help text, docstrings): ``Documentation/aha.md`` or ``README.md``,
#: with an ``#anchor`` that may follow in the next string literal (``"...md" "#anchor"``).
CODE_REFERENCE = re.compile(r'(?<![\w/.])(README\.md|Documentation/[\w.-]+\.md)(?:"\s*")?(#[\w-]+)?')


def code_references(text: str) -> list[str]:
    """The guide's pages (and anchors) a source file names."""
    return [page + anchor for page, anchor in CODE_REFERENCE.findall(text)]


def test_code_references_are_found_across_string_literals():
    text = ('help="see Documentation/command-line.md"\n        "#options"); data/emidec/README.md; '
            "Documentation/aha.md, README.md#performance")
    assert code_references(text) == ["Documentation/command-line.md#options", "Documentation/aha.md",
                                     "README.md#performance"]


def test_pages_and_anchors_named_in_code_exist():
    """Help texts and docstrings point at the guide's page and section that hold the text (the
    README's reference moved into Documentation/): a renamed page or heading leaves them pointing
    nowhere, which no Markdown check sees."""
    broken = []
    for folder in ("CardioScarLib/cardioscar", "CardioScar", "AttriVAE"):
        for source in sorted((REPO / folder).rglob("*.py")):
            for reference in code_references(source.read_text(encoding="utf-8")):
                page, _, anchor = reference.partition("#")
                if not (REPO / page).is_file() or (anchor and anchor not in anchors(REPO / page)):
                    broken.append(f"{source.relative_to(REPO)}: {reference}")
    assert not broken, "\n".join(broken)


def training_commands_without_a_preset(text: str) -> list[str]:
    """The guide's shell commands that train (``cardioscar train``/``fine-tune``, the batch script
    without ``--model``) and do not name ``--preset``."""
    found = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").split("\n"):
            code = line.split(" #")[0]
            trains = re.search(r"cardioscar (train|fine-tune)\b|cardioscar_batch\.py", code) and "--model " not in code
            if trains and "--preset" not in code:
                found.append(code.strip())
    return found


def test_the_check_finds_a_training_command_without_its_preset():
    text = ("```bash\ncardioscar train --training-data d.npz --output m.pth --preset fast\n"
            "Slicer --python-script cardioscar_batch.py \\\n    --volume a.nii.gz --output o.vtk  # trains\n"
            "python cardioscar_batch.py --model m.pth --mesh h.vtk --output o.vtk\n```\n")
    assert training_commands_without_a_preset(text) == [
        "Slicer --python-script cardioscar_batch.py      --volume a.nii.gz --output o.vtk"]


@pytest.mark.parametrize("document", ["README.md", *GUIDE])
def test_every_documented_training_command_names_its_preset(document):
    """A user pastes the guide's commands as they are. Every training command of the command line
    names ``--preset fast``, but the batch-mode example did not, so it trained with the documented
    schedule (up to 10,000 epochs; on the demo 0.870 at its 600 s cap against the fast preset's
    0.977 in 53 s, Testing/benchmarks/RESULTS.md): a command that trains says which preset."""
    missing = training_commands_without_a_preset((REPO / document).read_text(encoding="utf-8"))
    assert not missing, "\n".join(missing)
