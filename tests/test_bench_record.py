"""`make bench` keeps what each benchmark printed under figures/bench/ (the README's Performance
numbers cite those records)."""
import importlib

bench_main = importlib.import_module("bench.__main__")


def test_record_writes_the_printed_table_under_a_header(tmp_path):
    p = bench_main.record("bench_data", "| a | b |\n|---|---|\n| 1.5 | 2 |\n", out=tmp_path)
    text = p.read_text()
    assert p.name == "bench_data.md" and text.startswith("# bench_data\n")
    assert "`make bench BENCH=data`" in text and "| 1.5 | 2 |" in text
    assert [x.name for x in tmp_path.iterdir()] == ["bench_data.md"]      # no temporary left


def test_unknown_benchmark_is_an_error_listing_the_available_ones(capsys):
    assert bench_main.main(["nope", "--no-save"]) == 2
    assert "bench_critic" in capsys.readouterr().err
