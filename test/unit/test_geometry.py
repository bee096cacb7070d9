import json

import numpy as np
import pytest

from tacocc_core.geometry import (
    GridSpec,
    ImageTransform,
    in_image,
    invert_transform,
    make_transform,
    pose_to_transform,
    project_points,
    quaternion_wxyz_to_matrix,
    transform_points,
)

IMAGE_W, IMAGE_H = 1600, 900


# ---------------------------------------------------------------- grid


def test_grid_shape_and_centres():
    grid = GridSpec.from_ranges((-50, 50), (-50, 50), (-5, 3), 0.5)
    assert grid.shape == (200, 200, 16)
    np.testing.assert_allclose(grid.index_to_center([0, 0, 0]), [-49.75, -49.75, -4.75])
    np.testing.assert_allclose(grid.index_to_center([199, 199, 15]), [49.75, 49.75, 2.75])
    np.testing.assert_allclose(grid.upper, [50, 50, 3])
    assert grid.centers().shape == (200, 200, 16, 3)


def test_grid_index_round_trip_and_outside():
    grid = GridSpec.from_ranges((-24, 24), (-24, 24), (-5, 3), 1.0)
    rng = np.random.default_rng(0)
    idx = np.stack([rng.integers(0, n, 500) for n in grid.shape], axis=1)
    back, inside = grid.point_to_index(grid.index_to_center(idx))
    assert inside.all()
    np.testing.assert_array_equal(back, idx)
    _, inside = grid.point_to_index(np.array([[24.0, 0, 0], [-24.01, 0, 0], [0, 0, 3.0], [np.nan, 0, 0], [0, 0, -5.0]]))
    assert inside.tolist() == [False, False, False, False, True]


def test_grid_rejects_fractional_voxels():
    with pytest.raises(ValueError, match="not a positive whole number of voxels"):
        GridSpec.from_ranges((0, 1), (0, 1), (0, 1), 0.3)


def test_point_to_index_rejects_bad_shape():
    grid = GridSpec.from_ranges((0, 1), (0, 1), (0, 1), 0.5)
    with pytest.raises(ValueError, match=r"expected \(N, 3\) points, got \(3,\)"):
        grid.point_to_index(np.zeros(3))


# ---------------------------------------------------------------- transforms


def test_transform_inverse_and_quaternion_order():
    rot = quaternion_wxyz_to_matrix([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])  # 90 deg about z
    np.testing.assert_allclose(rot @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    a2b = make_transform(rot, [1, 2, 3])
    pts = np.random.default_rng(1).normal(size=(20, 4))
    there = transform_points(a2b, pts)
    np.testing.assert_allclose(there[:, 3], pts[:, 3])  # extra columns kept
    np.testing.assert_allclose(transform_points(invert_transform(a2b), there), pts, atol=1e-12)
    np.testing.assert_allclose(pose_to_transform([1, 2, 3], [np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]), a2b)


def test_pinhole_projection_by_hand():
    cam2img = np.array([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
    uv, depth = project_points(np.array([[0.0, 0, 10], [1.0, -2, 10], [0, 0, -5]]), np.eye(4), cam2img)
    np.testing.assert_allclose(uv[:2], [[50, 40], [60, 20]])
    np.testing.assert_allclose(depth, [10, 10, -5])
    assert in_image(uv, depth, 100, 80).tolist() == [True, True, False]


# ---------------------------------------------------------------- resize / crop bookkeeping


def test_resize_crop_maps_pixels_and_intrinsics_consistently():
    t = ImageTransform.resize_crop_bottom((900, 1600), (256, 704))
    assert t.scale == (0.44, 0.44)
    assert t.crop == (0, 140)
    cam2img = np.array([[1266.4, 0, 816.3], [0, 1266.4, 491.5], [0, 0, 1]])
    pts = np.random.default_rng(2).uniform([-10, -3, 5], [10, 3, 40], size=(100, 3))
    uv, depth = project_points(pts, np.eye(4), cam2img)
    uv_new, _ = project_points(pts, np.eye(4), t.apply_to_intrinsics(cam2img))
    np.testing.assert_allclose(uv_new, t.apply_to_pixels(uv), atol=1e-9)


def test_apply_to_image_moves_a_marked_pixel_where_the_map_says():
    image = np.zeros((900, 1600, 3), np.uint8)
    image[600:620, 1000:1020] = 255  # a white square, centre (1010, 610)
    t = ImageTransform.resize_crop_bottom((900, 1600), (256, 704))
    out = t.apply_to_image(image)
    assert out.shape == (256, 704, 3)
    rows, cols = np.nonzero(out[:, :, 0] > 127)
    expected = t.apply_to_pixels(np.array([[1009.5, 609.5]]))[0]
    assert abs(cols.mean() - expected[0]) < 1.0 and abs(rows.mean() - expected[1]) < 1.0


def test_plain_resize():
    t = ImageTransform.resize_to((900, 1600), (64, 176))
    assert t.apply_to_image(np.zeros((900, 1600), np.uint8)).shape == (64, 176)
    np.testing.assert_allclose(t.apply_to_pixels(np.array([[1600.0, 900.0]])), [[176, 64]])


# ---------------------------------------------------------------- the real nuScenes keyframe


@pytest.fixture(scope="module")
def frame(nuscenes_frame_dir):
    calib = json.loads((nuscenes_frame_dir / "calib.json").read_text())
    points = np.fromfile(nuscenes_frame_dir / calib["lidar"]["file"], dtype=np.float32).reshape(-1, 5)
    boxes = json.loads((nuscenes_frame_dir / "boxes.json").read_text())["boxes"]
    return calib, points, boxes


def points_in_box(points: np.ndarray, box: list[float]) -> np.ndarray:
    """(N,) bool. The fixture's z is the box's gravity centre: with it the in-box counts equal the
    annotated num_lidar_pts (checked below), with the bottom-centre reading they are about half."""
    x, y, z, length, width, height, yaw = box
    q = points[:, :3] - np.array([x, y, z])
    c, s = np.cos(yaw), np.sin(yaw)
    along, across = q[:, 0] * c + q[:, 1] * s, -q[:, 0] * s + q[:, 1] * c
    return (np.abs(along) < length / 2) & (np.abs(across) < width / 2) & (np.abs(q[:, 2]) < height / 2)


def test_box_point_counts_match_annotation(frame):
    _, points, boxes = frame
    annotated = counted = counted_bottom = 0
    for box in boxes:
        if box["num_lidar_pts"] >= 10:
            count = points_in_box(points, box["box_lidar_xyz_lwh_yaw"]).sum()
            assert abs(count - box["num_lidar_pts"]) <= max(3, 0.12 * box["num_lidar_pts"]), box
            raised = list(box["box_lidar_xyz_lwh_yaw"])
            raised[2] += raised[5] / 2  # the box if z were its bottom
            annotated += box["num_lidar_pts"]
            counted += count
            counted_bottom += points_in_box(points, raised).sum()
    assert abs(counted - annotated) < 0.05 * annotated
    assert counted_bottom < 0.6 * annotated


def test_lidar2cam_is_the_ego_chain_plus_ego_motion(frame):
    """lidar2cam goes through the global frame with the ego pose at each sensor's own timestamp, so it
    differs from cam2ego^-1 @ lidar2ego by the ego motion between the two stamps (<= ~50 ms here)."""
    calib, _, _ = frame
    lidar2ego = np.array(calib["lidar"]["lidar2ego"])
    for name, cam in calib["cameras"].items():
        composed = invert_transform(np.array(cam["cam2ego"])) @ lidar2ego
        given = np.array(cam["lidar2cam"])
        np.testing.assert_allclose(composed[:3, :3], given[:3, :3], atol=5e-3, err_msg=name)
        dt = abs(cam["timestamp_s"] - calib["timestamp_s"])
        assert np.linalg.norm(composed[:3, 3] - given[:3, 3]) <= 15.0 * dt + 0.01, name  # below 15 m/s


def test_points_land_in_the_camera_that_faces_them(frame):
    calib, points, _ = frame
    azimuth = np.degrees(np.arctan2(points[:, 1], points[:, 0]))
    for name, cam in calib["cameras"].items():
        lidar2cam = np.array(cam["lidar2cam"])
        uv, depth = project_points(points, lidar2cam, np.array(cam["cam2img"]))
        visible = in_image(uv, depth, IMAGE_W, IMAGE_H)
        assert visible.sum() > 2000, name
        # Seen from the LiDAR, visible points lie within the camera's horizontal field of view around its
        # optical axis (CAM_BACK is the wide one), give or take the parallax of the camera's offset.
        axis = invert_transform(lidar2cam)[:3, 2]
        axis_az = np.degrees(np.arctan2(axis[1], axis[0]))
        half_fov = np.degrees(np.arctan(IMAGE_W / 2 / cam["cam2img"][0][0]))
        off = (azimuth[visible] - axis_az + 180) % 360 - 180
        assert np.percentile(np.abs(off), 99) < half_fov + 5, name
        assert np.median(np.abs(off)) < half_fov, name


# Image regions of vehicles, marked by eye on the fixture's 1600x900 JPEGs: (box index, camera, u0, v0, u1, v1).
HAND_MARKED_VEHICLES = [
    (18, "CAM_FRONT", 110, 210, 640, 630),  # the white truck parked on the left
    (65, "CAM_FRONT", 700, 455, 800, 530),  # the car ahead in the left lane
    (52, "CAM_FRONT", 975, 460, 1090, 535),  # the dark SUV ahead on the right
    (7, "CAM_BACK", 320, 490, 500, 600),  # the red car behind, on the left
]


@pytest.mark.parametrize(("box_index", "camera", "u0", "v0", "u1", "v1"), HAND_MARKED_VEHICLES)
def test_points_inside_vehicle_boxes_project_onto_the_vehicle(frame, box_index, camera, u0, v0, u1, v1):
    calib, points, boxes = frame
    box = boxes[box_index]
    assert box["label"] in ("car", "truck")
    cam = calib["cameras"][camera]
    inside = points_in_box(points, box["box_lidar_xyz_lwh_yaw"])
    uv, depth = project_points(points[inside], np.array(cam["lidar2cam"]), np.array(cam["cam2img"]))
    visible = in_image(uv, depth, IMAGE_W, IMAGE_H)
    assert visible.sum() >= 5
    u, v = uv[visible, 0], uv[visible, 1]
    on_vehicle = (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
    assert on_vehicle.mean() >= 0.95
    # ...and nowhere near it in any other camera's wrong half: the same points seen from the opposite camera
    # are behind it.
    opposite = {"CAM_FRONT": "CAM_BACK", "CAM_BACK": "CAM_FRONT"}[camera]
    _, depth_opp = project_points(points[inside], np.array(calib["cameras"][opposite]["lidar2cam"]), np.eye(3))
    assert (depth_opp < 0).all()
