"""The dated tables raftkit ships (defaults and lifecycle), the files that amend them, and the
stale-table notice of a dry run."""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path

import pytest

import raftkit.cli
from raftkit.errors import UsageError
from raftkit.llm.usage import DEFAULT_PRICES, PRICES_AS_OF, ModelPrice, PriceTable
from raftkit.pipeline import RaftConfig
from raftkit.reference_data import TableName, default_models, load_reference

USER_PRICES = """
as_of = 2026-06-01
[models]
teacher = "house-teacher"
[prices.house-teacher]
input = 1.0
output = 2.0
[prices."gpt-4.1-nano"]
training = 0.75
"""


def test_the_tables_ship_inside_the_package_and_are_dated() -> None:
    names: tuple[TableName, ...] = ("defaults", "lifecycle")
    for name in names:
        assert resources.files("raftkit").joinpath("data", f"{name}.toml").is_file()
        table = load_reference(name)
        assert table.as_of == date(2026, 11, 30)
        assert table.files == (f"raftkit/data/{name}.toml",)
    assert PRICES_AS_OF == "2026-11-30"
    assert PriceTable().as_of == PRICES_AS_OF
    # the defaults are models that are not announced to retire before the next table
    models = default_models()
    assert (models.teacher, models.student) == ("gpt-4.1", "gpt-4.1-nano")
    assert RaftConfig().teacher_model == models.teacher
    assert RaftConfig().embedding_model == models.embedding


def test_the_price_table_apis_keep_working() -> None:
    assert DEFAULT_PRICES["gpt-4o-mini"] == ModelPrice(
        input=0.15,
        cached_input=0.075,
        output=0.60,
        training=3.00,
        fine_tuned_input=0.30,
        fine_tuned_cached_input=0.15,
        fine_tuned_output=1.20,
    )
    table = PriceTable()
    assert table.lookup("gpt-4.1-mini-2025-04-14") == DEFAULT_PRICES["gpt-4.1-mini"]
    fine_tuned = table.lookup("ft:gpt-4.1-nano:acme::abc")
    assert fine_tuned is not None
    assert fine_tuned.input == DEFAULT_PRICES["gpt-4.1-nano"].fine_tuned_input
    assert table.lookup("gpt-5-mini") == ModelPrice(input=0.25, cached_input=0.025, output=2.0)


def test_a_user_file_amends_the_shipped_table(tmp_path: Path) -> None:
    mine = tmp_path / "prices.toml"
    mine.write_text(USER_PRICES, encoding="utf-8")
    table = load_reference("defaults", mine)
    assert table.as_of == date(2026, 6, 1)
    assert table.files[-1] == str(mine)
    assert default_models(table).teacher == "house-teacher"
    assert default_models(table).student == "gpt-4.1-nano"  # kept from the shipped table
    prices = PriceTable.from_file(mine)
    assert prices.as_of == "2026-06-01"
    assert prices.lookup("house-teacher") == ModelPrice(input=1.0, output=2.0)
    nano = prices.lookup("gpt-4.1-nano")
    assert nano is not None
    assert (nano.training, nano.input) == (0.75, 0.10)  # one key replaced, the rest kept


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[prices.x]\ninput = 1.0\n", "as_of is missing"),
        ("as_of = 'soon'\n", "is not a date"),
        ("as_of = 2026-01-01\n[prices.x]\ninput = -1\n", "prices.x: input"),
        ("as_of = 2026-01-01\n[prices.x]\nfree = true\n", "prices.x: free"),
        ("as_of = 2026-01-01\nprices = [", "is not valid TOML"),
    ],
)
def test_a_bad_user_file_is_named_in_one_line(tmp_path: Path, text: str, problem: str) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=problem) as raised:
        PriceTable.from_file(mine)
    assert "\n" not in str(raised.value)
    assert str(mine) in str(raised.value) or problem == "is not a date"
    with pytest.raises(UsageError, match="cannot read"):
        load_reference("defaults", tmp_path / "missing.toml")


def test_staleness_is_measured_against_the_day_given() -> None:
    table = load_reference("defaults")
    assert table.stale_notice(date(2027, 1, 15)) is None
    notice = table.stale_notice(date(2027, 6, 1))
    assert notice is not None
    assert "dated 2026-11-30, 183 days before 2027-06-01" in notice


def test_a_dry_run_says_when_its_prices_are_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bats.md").write_text("# Bats\n\nBats are mammals that fly at night.\n")
    out = tmp_path / "run"
    monkeypatch.setenv("RAFTKIT_TODAY", "2026-12-01")
    argv = ["generate", str(docs), "--out", str(out), "--dry-run"]
    assert raftkit.cli.main(argv) == 0
    fresh = capsys.readouterr().out
    assert "Prices as of 2026-11-30." in fresh
    assert "may be out of date" not in fresh

    monkeypatch.setenv("RAFTKIT_TODAY", "2027-06-01")
    assert raftkit.cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "Note: the defaults table is dated 2026-11-30, 183 days before 2027-06-01" in (
        captured.out
    )
    # the default teacher shut down on 2027-01-14: a dry run says so, and pays nothing
    assert "gpt-4.1 was shut down on OpenAI on 2027-01-14" in captured.err

    old = tmp_path / "old-prices.toml"
    old.write_text("as_of = 2025-01-01\n", encoding="utf-8")
    monkeypatch.setenv("RAFTKIT_TODAY", "2026-12-01")
    assert raftkit.cli.main([*argv, "--defaults-file", str(old)]) == 0
    stale = capsys.readouterr().out
    assert "Prices as of 2025-01-01." in stale
    assert f"amend it with a file of your own ({old})" in stale
    assert not out.exists()
