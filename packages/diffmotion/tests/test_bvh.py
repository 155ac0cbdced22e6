import numpy as np
import pytest

from diffrepro.diffmotion.bvh import Motion, format_bvh, parse_bvh, read_bvh, resample, write_bvh
from diffrepro.diffmotion.poses import Standardizer, mirror_poses, motion_to_poses, poses_to_motion
from diffrepro.diffmotion.skeleton import UPPER_BODY, upper_body_skeleton

MINIMAL = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Yrotation Xrotation Zrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Xrotation Zrotation Yrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
1 2 3 10 20 30 5 6 7
1 2 3 11 21 31 8 9 10
"""


def random_motion(frames=12, seed=0, fps=60.0):
    rng = np.random.default_rng(seed)
    skeleton = upper_body_skeleton()
    values = rng.uniform(-80.0, 80.0, (frames, skeleton.num_channels))
    return Motion(skeleton, 1.0 / fps, values)


def test_write_read_write_is_identical(tmp_path):
    first = write_bvh(random_motion(), tmp_path / "a.bvh")
    second = write_bvh(read_bvh(first), tmp_path / "b.bvh")
    assert first.read_text() == second.read_text()
    again = parse_bvh(format_bvh(parse_bvh(MINIMAL)))
    assert format_bvh(again) == format_bvh(parse_bvh(MINIMAL))


def test_parse_reads_hierarchy_channels_and_frames():
    motion = parse_bvh(MINIMAL)
    hips, chest = motion.skeleton.joints
    assert (hips.name, hips.parent, hips.rotation_order) == ("Hips", -1, "YXZ")
    assert (chest.name, chest.parent, chest.offset, chest.end_site) == (
        "Chest",
        0,
        (0, 10, 0),
        (0, 5, 0),
    )
    assert chest.rotation_order == "XZY"
    assert motion.values.shape == (2, 9) and motion.values[1, 8] == 10.0
    assert abs(motion.fps - 30.0) < 1e-3


@pytest.mark.parametrize(
    ("broken", "line", "message"),
    [
        (MINIMAL.replace("OFFSET 0 10 0", "OFFSET 0 ten 0"), 8, "not a number"),
        (MINIMAL.replace("CHANNELS 3 Xrotation", "CHANNELS 4 Xrotation"), 9, "declares 4 channels"),
        (MINIMAL.replace("Frames: 2", "Frames: 3"), 17, "only 2 follow"),
        (MINIMAL.replace("1 2 3 11 21 31 8 9 10", "1 2 3 11 21 31 8 9"), 20, "needs 9 numbers"),
        (MINIMAL.replace("Zrotation\n  JOINT", "Wrotation\n  JOINT"), 5, "unknown channel"),
    ],
)
def test_malformed_bvh_names_the_line(broken, line, message):
    with pytest.raises(ValueError, match=rf"test.bvh, line {line}: .*{message}"):
        parse_bvh(broken, "test.bvh")


def test_extra_frame_rows_are_kept_and_missing_file_is_clear(tmp_path):
    motion = parse_bvh(MINIMAL.replace("Frames: 2", "Frames: 1"))  # declared one too few
    assert motion.num_frames == 2
    with pytest.raises(FileNotFoundError, match="missing.bvh"):
        read_bvh(tmp_path / "missing.bvh")


def test_resample_decimates_integer_ratios_and_keeps_duration():
    motion = random_motion(frames=60)
    down = resample(motion, 20.0)
    assert down.num_frames == 20 and abs(down.fps - 20.0) < 1e-9
    np.testing.assert_array_equal(down.values, motion.values[::3])
    odd = resample(motion, 25.0)
    assert odd.num_frames == 25  # one second at 25 fps


def test_pose_features_round_trip_through_bvh(tmp_path):
    skeleton = upper_body_skeleton()
    rng = np.random.default_rng(3)
    poses = rng.normal(0.0, 0.6, (10, 45))
    motion = poses_to_motion(poses, skeleton, UPPER_BODY, fps=20)
    loaded = read_bvh(write_bvh(motion, tmp_path / "p.bvh"))
    np.testing.assert_allclose(motion_to_poses(loaded, UPPER_BODY), poses, atol=1e-6)
    root = skeleton.channel_slice("Hips")
    assert np.all(loaded.values[:, root] == 0.0)  # root translation and rotation are zero


def test_joint_selection_by_name_and_unknown_joint():
    motion = random_motion()
    head = motion_to_poses(motion, ["Head"])
    assert head.shape == (motion.num_frames, 3)
    np.testing.assert_allclose(head, motion_to_poses(motion, UPPER_BODY)[:, 18:21])
    with pytest.raises(ValueError, match="no joint named 'Tail'"):
        motion_to_poses(motion, ["Tail"])


def test_mirroring_twice_is_identity_and_swaps_sides():
    poses = np.random.default_rng(4).normal(size=(5, 45))
    mirrored = mirror_poses(poses, UPPER_BODY)
    np.testing.assert_allclose(mirror_poses(mirrored, UPPER_BODY), poses)
    right, left = UPPER_BODY.index("RightArm"), UPPER_BODY.index("LeftArm")
    np.testing.assert_allclose(
        mirrored[:, 3 * left : 3 * left + 3], poses[:, 3 * right : 3 * right + 3] * [1, -1, -1]
    )


def test_standardizer_inverse_is_identity():
    data = np.random.default_rng(5).normal(3.0, 2.0, (100, 7))
    scaler = Standardizer.fit(data)
    np.testing.assert_allclose(scaler.transform(data).mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse(scaler.transform(data)), data)
