"""The figures a reader looks at: page-width grids, labelled axes, legends that name each series
(issue 18). Drawn with the Agg backend; nothing here is compared pixel by pixel."""
import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_learning_curves_grid_has_labelled_axes_and_registry_names():
    from vgps.agents.runs import METRIC_LABELS, plot_learning_curves
    rows = [{"phase": "critic", "step": s, "td_loss": 1.0 / s, "cql_loss": 2.0, "q_data": -s,
             "q_data_min": -2 * s, "calql/bound_rate": 0.5, "alpha": 0.9} for s in (1, 2, 3)]
    keys = ("td_loss", "cql_loss", "q_data", "q_data_min", "calql/bound_rate", "alpha")
    fig = plot_learning_curves({"calql": rows, "calql_sac": rows}, keys=keys)
    axes = _visible(fig)
    assert len(axes) == 6 and len(fig.axes) == 6           # 2 x 3 grid, no empty panel
    assert len({round(ax.get_position().y0, 3) for ax in axes}) == 2
    assert [ax.get_ylabel() for ax in axes] == [METRIC_LABELS[k] for k in keys]
    assert "not Cal-QL's α" in axes[-1].get_ylabel()       # the SAC temperature is not Cal-QL's alpha
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"Cal-QL", "Cal-QL (SAC actor)"}
    fig = plot_learning_curves({"x": rows}, keys=keys[:4])  # 4 panels: the 6th slot is hidden
    assert len(_visible(fig)) == 4


def test_q_along_episodes_same_episodes_in_every_panel_and_star_explained():
    from vgps.agents.diagnostics import plot_q_along_episodes
    eps = [{"instruction": f"put the object number {i} somewhere on the table", "success": i < 2,
            "q": np.linspace(-10, 0, 6) + i, "success_step": np.arange(6) >= 3 if i < 2 else np.zeros(6, bool),
            "failure_mode": None if i < 2 else "late_release"} for i in range(4)]
    fig = plot_q_along_episodes({"calql": {"per_episode": eps}, "iql": {"per_episode": eps}})
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == ["Cal-QL", "IQL"]
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[:4] == ["success: put the object number 0 somewhere on the table",
                         "success: put the object number 1 somewhere on the table",
                         "failure (late_release): put the object number 2 somewhere on the table",
                         "failure (late_release): put the object number 3 somewhere on the table"]
    assert "labelled success step" in texts[-1]
    assert all(len(ax.get_lines()) == 4 for ax in axes)


def test_ours_vs_paper_wraps_columns_into_rows():
    from vgps.eval import ablations as ab
    df = pd.DataFrame({"panel": [f"p{i}" for i in range(6) for _ in range(2)], "success": [1, 0] * 6})
    r = ab.rates(df.assign(K=10), ["panel", "K"])
    fig = ab.plot_ours_vs_paper(r, None, x="K", col="panel", kind="line", col_wrap=3)
    axes = _visible(fig)
    assert len(axes) == 6 and len({round(ax.get_position().y0, 3) for ax in axes}) == 2
    assert [ax.get_ylabel() for ax in axes] == ["success rate", "", "", "success rate", "", ""]


def test_draw_proposals_uses_the_recorded_gripper_position():
    import matplotlib.pyplot as plt

    import vgps.envs as envs
    from vgps.eval.viz import draw_proposals, project_points
    env = envs.make("widowx_carrot_on_plate", render=False, image_size=64)   # no GL: TF may follow
    env.reset(seed=0)
    tcp0, img0 = env.unwrapped.tcp_position(), np.zeros((64, 64, 3), np.uint8)
    for _ in range(5):
        env.step(np.array([0.02, 0.0, -0.02, 0, 0, 0, 1], np.float32))
    cand = np.zeros((2, 7), np.float32)
    cand[:, 0] = [0.01, -0.01]
    fig, ax = plt.subplots()
    draw_proposals(ax, env, img0, cand, np.array([0.0, -1.0]), 0, tcp=tcp0)
    start = project_points(env, tcp0[None])[0]
    arrows = [c for c in ax.get_children() if isinstance(c, matplotlib.text.Annotation)]
    assert len(arrows) == 3                                 # K proposals + the chosen one
    np.testing.assert_allclose(arrows[0].xyann, start)      # arrows start at the recorded gripper
    assert not np.allclose(project_points(env, env.unwrapped.tcp_position()[None])[0], start)
    env.close()


def test_seconds_per_step_from_logged_critic_rows():
    """Wall clock from the first to the last logged critic step (BC rows and compilation excluded)."""
    import math
    from vgps.agents.runs import seconds_per_step
    rows = [{"phase": "behavior", "step": 0, "wall_s": 0.0}, {"phase": "critic", "step": 100, "wall_s": 9.0},
            {"phase": "critic", "step": 300, "wall_s": 10.0}, {"phase": "critic", "step": 500, "wall_s": 11.5}]
    assert seconds_per_step(rows) == (11.5 - 9.0) / 400
    assert math.isnan(seconds_per_step(rows[:2]))


def test_the_overhead_record_reads_back_as_the_measured_table(tmp_path):
    """Notebook 06 shows Table 9 from the committed bench record: the parsed frame has measure()'s
    columns and the record's numbers; a file without that table is refused by name."""
    from vgps.eval.overhead import read_record
    from vgps.paths import REPO
    df = read_record(REPO / "figures" / "bench" / "bench_overhead.md")
    assert list(df.columns) == ["modality", "method", "K", "latency_ms", "overhead", "critic_share",
                                "paper_s", "paper_overhead"]
    assert set(df["K"]) == {1, 10, 30, 50, 100} and (df[df["method"] == "base"]["overhead"] == 1.0).all()
    row = df[(df["modality"] == "octo-scale") & (df["method"] == "V-GPS (re-encode K×)") & (df["K"] == 100)].iloc[0]
    assert row["paper_overhead"] == 2.12
    bad = tmp_path / "x.md"
    bad.write_text("# nothing\n")
    with pytest.raises(ValueError, match="x.md: no markdown table"):
        read_record(bad)


def test_from_markdown_reads_back_what_to_markdown_wrote():
    from vgps.plotting import from_markdown, to_markdown
    df = pd.DataFrame({"policy": ["octo-small", "rt1x"], "change": [0.125, -0.5], "K": [10, 50]})
    back = from_markdown("# title\n\n" + to_markdown(df) + "\n\ntext after\n")
    assert list(back.columns) == ["policy", "change", "K"]
    assert back.values.tolist() == [["octo-small", "0.125", "10"], ["rt1x", "-0.500", "50"]]
    with pytest.raises(ValueError, match="no markdown table"):
        from_markdown("| not a table |\nplain text\n")
