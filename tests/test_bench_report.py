"""docs/benchmarks.md: a new bench run replaces the generated part and keeps the notes written by hand."""

from bench.run import NOTES_MARKER, write_document


def test_a_new_run_keeps_the_hand_written_notes(tmp_path):
    path = tmp_path / "benchmarks.md"
    write_document(path, "# Sync benchmarks\n\nold figures\n")
    assert path.read_text().endswith(NOTES_MARKER + "\n")
    path.write_text(path.read_text() + "\n## Profile of a job\n\nwritten by hand\n")
    write_document(path, "# Sync benchmarks\n\nnew figures\n")
    text = path.read_text()
    assert "new figures" in text and "old figures" not in text
    assert text.index("new figures") < text.index(NOTES_MARKER) < text.index("written by hand")
