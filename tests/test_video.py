"""The ``video`` extra: ``gymnasium.wrappers.RecordVideo`` records GreedyMouse episodes."""

from __future__ import annotations

import pytest


def test_record_video_writes_an_mp4(tmp_path) -> None:
    pytest.importorskip("moviepy", reason="the `video` extra (moviepy) is not installed")
    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    import smpc_gym  # noqa: F401 - registers GreedyMouse-v0

    env = gym.make("GreedyMouse-v0", render_mode="rgb_array", max_episode_steps=12)
    env = RecordVideo(env, str(tmp_path), episode_trigger=lambda e: True, disable_logger=True)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    env.close()
    videos = list(tmp_path.glob("*.mp4"))
    assert len(videos) == 1, sorted(p.name for p in tmp_path.iterdir())
    data = videos[0].read_bytes()
    assert len(data) > 1000 and b"ftyp" in data[:32]  # an MP4 container, not an empty file
