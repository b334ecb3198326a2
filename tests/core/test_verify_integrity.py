"""``sketchsearch verify`` against someone who holds the data folder: the attribute change log and
its triggers dropped or rewritten with plain sqlite3, an attribute cache file forged with codes that
are still in range, and a photo's byte changed behind an unchanged size and modification time."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np

from core.catalogue.catalogue import Catalogue
from core.index.attribute_cache import SUFFIX
from tests.core.test_cli_reliability import cli


def gallery(tmp_path, capsys, make_photos, model_dir, count=4) -> tuple[list[Path], list]:
    photos = make_photos(count)
    data = ["--data-dir", tmp_path / "data", "--model", model_dir]  # untrained: no predicted attributes
    assert cli(capsys, *data, "import", photos[0].parent)[0] == 0
    return photos, data


def problems(out: str) -> list[str]:
    return [line.removeprefix("problem: ") for line in out.splitlines() if line.startswith("problem: ")]


def catalogue_file(tmp_path) -> Path:
    return tmp_path / "data" / Catalogue.FILE_NAME


def test_a_dropped_change_log_table_is_named_by_verify_and_refused_on_opening(
    tmp_path, capsys, make_photos, untrained_model_dir
):
    photos, data = gallery(tmp_path, capsys, make_photos, untrained_model_dir)
    with sqlite3.connect(catalogue_file(tmp_path)) as db:
        db.execute("DROP TABLE attribute_changes")
    code, out, _ = cli(capsys, *data, "verify")
    assert code == 1
    assert f"{catalogue_file(tmp_path)}: table attribute_changes (the attribute change log) is missing" in problems(out)
    # every other command is refused at once, in one line, instead of each import failing on the triggers
    for command in (["stats"], ["import", photos[0].parent]):
        code, out, err = cli(capsys, *data, *command)
        assert (code, out) == (2, "") and err.count("\n") == 1, (command, err)
        assert err.startswith(f"error: {catalogue_file(tmp_path)}: the attribute change log is damaged (")
        assert "table attribute_changes (the attribute change log) is missing" in err
        assert "run 'sketchsearch verify'" in err


def test_verify_names_each_dropped_altered_or_foreign_trigger_of_the_change_log(
    tmp_path, capsys, make_photos, untrained_model_dir
):
    _, data = gallery(tmp_path, capsys, make_photos, untrained_model_dir)
    assert cli(capsys, *data, "verify")[0] == 0
    with sqlite3.connect(catalogue_file(tmp_path)) as db:
        db.execute("DROP TRIGGER attribute_changes_update")
        db.execute("DROP TRIGGER attribute_changes_photo_insert")
        db.execute("DROP TRIGGER attribute_changes_delete")  # put back doing nothing
        db.execute("CREATE TRIGGER attribute_changes_delete AFTER DELETE ON photo_attributes BEGIN SELECT 1; END")
        db.execute(  # and one that quietly empties the log after every write
            "CREATE TRIGGER tidy AFTER INSERT ON attribute_changes BEGIN DELETE FROM attribute_changes "
            "WHERE photo_id = NEW.photo_id; END"
        )
    code, out, _ = cli(capsys, *data, "verify")
    assert code == 1
    found = [p.removeprefix(f"{catalogue_file(tmp_path)}: ") for p in problems(out)]
    assert len(found) == 4
    assert "trigger attribute_changes_update (of the attribute change log) is missing" in found
    assert "trigger attribute_changes_photo_insert (of the attribute change log) is missing" in found
    assert "trigger attribute_changes_delete was altered (its SQL is not the one SketchSearch creates)" in found
    assert "trigger tidy on attribute_changes is not one SketchSearch creates" in found
    code, _, err = cli(capsys, *data, "stats")
    assert code == 2 and "trigger attribute_changes_update (of the attribute change log) is missing" in err


def _set_genders(capsys, data, genders: dict[int, str]) -> None:
    for photo_id, gender in genders.items():
        assert cli(capsys, *data, "attributes", "set", photo_id, f"gender={gender}")[0] == 0


def _forge_cache(path: Path) -> None:
    """Swap the gender codes of every photo (male <-> female): every code still in range."""
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    column = list(json.loads(str(arrays["schema"]))).index("gender")
    values = arrays["values"].copy()
    values[:, column] = np.where(values[:, column] >= 0, 1 - values[:, column], -1)
    arrays["values"] = values
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _female_results(capsys, data, sketch) -> dict[int, str]:
    code, out, _ = cli(capsys, *data, "search", sketch, "--top", "10", "--where", "gender=female", "--json")
    assert code == 0
    return {c["photo_id"]: c["attributes"]["gender"]["value"] for c in json.loads(out)[0]["candidates"]}


def test_a_forged_attribute_cache_is_reported_by_verify_and_filters_then_agree_with_the_catalogue(
    tmp_path, capsys, make_photos, untrained_model_dir
):
    photos, data = gallery(tmp_path, capsys, make_photos, untrained_model_dir)
    _set_genders(capsys, data, {1: "male", 2: "male", 3: "female", 4: "female"})
    assert _female_results(capsys, data, photos[0]) == {3: "female", 4: "female"}  # the table is cached at close
    (cache,) = (tmp_path / "data" / "index").glob(f"*{SUFFIX}")
    _forge_cache(cache)
    code, out, _ = cli(capsys, *data, "verify")
    assert code == 1
    (problem,) = problems(out)
    assert problem.startswith(f"{cache}: the cached attribute table does not match the catalogue (4 photo(s) differ")
    assert "removed" in problem
    assert _female_results(capsys, data, photos[0]) == {3: "female", 4: "female"}
    assert cli(capsys, *data, "verify")[0] == 0  # cached again, from the catalogue


def test_filters_never_show_a_photo_whose_stored_value_is_another_even_from_a_forged_cache(
    tmp_path, capsys, make_photos, untrained_model_dir
):
    """Without any verify: a shown candidate whose stored value contradicts the filter is found out
    (its values are read to be shown anyway), and the table is then read from the catalogue."""
    photos, data = gallery(tmp_path, capsys, make_photos, untrained_model_dir)
    _set_genders(capsys, data, {1: "male", 2: "male", 3: "female", 4: "female"})
    assert _female_results(capsys, data, photos[0]) == {3: "female", 4: "female"}
    (cache,) = (tmp_path / "data" / "index").glob(f"*{SUFFIX}")
    _forge_cache(cache)
    assert _female_results(capsys, data, photos[0]) == {3: "female", 4: "female"}
    assert cli(capsys, *data, "verify")[0] == 0


def test_verify_rehash_finds_a_byte_changed_behind_an_unchanged_size_and_time(
    tmp_path, capsys, make_photos, untrained_model_dir
):
    from core.workspace import Workspace

    photos, data = gallery(tmp_path, capsys, make_photos, untrained_model_dir, count=3)
    target = photos[1]
    before = target.stat()
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_size == before.st_size and target.stat().st_mtime_ns == before.st_mtime_ns
    # --files trusts an unchanged size and modification time (a stat a photo): it cannot see this
    assert cli(capsys, *data, "verify", "--files") == (0, "ok: catalogue, embeddings and index agree\n", "")
    code, out, _ = cli(capsys, *data, "verify", "--files", "--rehash")
    assert code == 1 and problems(out) == [f"photo 2: file changed since import: {target}"]
    assert cli(capsys, *data, "verify", "--rehash")[0] == 1  # --rehash alone checks the files too
    with Workspace(tmp_path / "data", untrained_model_dir, create=False) as workspace:
        seen = []
        report = workspace.verify(files=True, rehash=True, progress=seen.append)
    assert report.problems == [f"photo 2: file changed since import: {target}"]
    assert [(p.done, p.total, p.changed) for p in seen] == [(1, 3, 0), (2, 3, 1), (3, 3, 1)]
    assert seen[-1].current == str(photos[2])
