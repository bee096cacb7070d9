import hashlib
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from tacocc_core.cli import main
from tacocc_core.data.synthetic.domain import Domain, load_domain
from tacocc_core.data.synthetic.rig import surround_rig
from tacocc_core.data.synthetic.sensors import LIDAR_ELEVATIONS_DEG, lidar_sweep, render_camera
from tacocc_core.data.synthetic.street import build_street
from tacocc_core.data.synthetic.writer import GenerateOptions, generate_dataset
from tacocc_core.labels import CLASS_IDS

# sha256 over (relative path, bytes) of every file of `_tiny()` as written before domains existed: the
# default domain must keep the built-in output bit for bit.
BUILT_IN_SHA256 = "677ea93f1d6d3b4de8a9566a4b5c1b4645e5255ab3396994e5e2a11ebb2bb340"
SIZE = (36, 64)  # (height, width) of the rendered test images
BUILT_IN = Domain()


def _tiny(domain: Domain = BUILT_IN) -> GenerateOptions:
    return GenerateOptions(
        scenes=1, keyframes=2, seed=3, image_size=(48, 27), sweeps_per_keyframe=1, lidar_azimuths=120, domain=domain
    )


def _tree_sha256(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def street():
    return build_street(np.random.default_rng(5), 3.0, (0.0, 0.0))


def _front(street, domain: Domain = BUILT_IN):
    rig = surround_rig()
    cam = "CAM_FRONT"
    return render_camera(street, 1.0, rig.cam2ego[cam], rig.intrinsics(cam, SIZE), SIZE, domain)


def test_default_domain_writes_the_built_in_bytes(tmp_path):
    assert _tree_sha256(generate_dataset(tmp_path / "ds", _tiny())) == BUILT_IN_SHA256


def test_colours_replace_only_the_named_class(street):
    rgb, label = _front(street)
    car = label == CLASS_IDS["car"]
    ground = label == CLASS_IDS["driveable_surface"]
    assert car.sum() > 10 and ground.sum() > 10
    rgb2, label2 = _front(street, Domain(colours=(("car", (250.0, 250.0, 250.0)),)))
    np.testing.assert_array_equal(label, label2)
    np.testing.assert_array_equal(rgb[~car], rgb2[~car])
    assert rgb2[car].mean() > rgb[car].mean() + 60  # blue paint -> white paint


def test_brightness_scales_surfaces_not_the_sky(street):
    rgb, label = _front(street)
    dark, _ = _front(street, Domain(brightness=0.5))
    sky = label == 0
    np.testing.assert_array_equal(rgb[sky], dark[sky])
    ratio = dark[~sky].astype(float).sum() / rgb[~sky].astype(float).sum()
    assert 0.45 < ratio < 0.55


def test_sun_direction_changes_the_shading_not_the_scene(street):
    rgb, label = _front(street)
    other, label2 = _front(street, Domain(sun=(-0.4, -0.3, 0.86)))
    np.testing.assert_array_equal(label, label2)
    sky = label == 0
    np.testing.assert_array_equal(rgb[sky], other[sky])
    assert (rgb[~sky] != other[~sky]).any(axis=-1).mean() > 0.1  # walls facing the sun before are in shade


def test_lidar_beams_and_elevations(street):
    domain = Domain(lidar_beams=16, lidar_elevation_deg=(15.0, -15.0))
    np.testing.assert_array_equal(Domain().lidar_elevations(), LIDAR_ELEVATIONS_DEG)
    np.testing.assert_allclose(domain.lidar_elevations(), np.arange(15.0, -16.0, -2.0))
    lidar2ego = surround_rig().lidar2ego
    pts, _ = lidar_sweep(street, 1.0, lidar2ego, 180, np.random.default_rng(0), 1.0, 0, domain.lidar_elevations())
    assert set(np.unique(pts[:, 4]).astype(int)) <= set(range(16)) and len(pts) > 500
    elevation = np.degrees(np.arctan2(pts[:, 2], np.hypot(pts[:, 0], pts[:, 1])))
    expected = domain.lidar_elevations()[pts[:, 4].astype(int)]
    np.testing.assert_allclose(elevation, expected, atol=0.01)


def test_camera_mount_raises_and_pitches_down():
    cam2ego = surround_rig().cam2ego["CAM_FRONT"]
    moved = Domain(camera_height_offset_m=0.3, camera_pitch_deg=5.0).mount_camera(cam2ego)
    np.testing.assert_allclose(moved[:3, 3], cam2ego[:3, 3] + [0.0, 0.0, 0.3])
    np.testing.assert_allclose(moved[:3, :3] @ moved[:3, :3].T, np.eye(3), atol=1e-12)
    axis = moved[:3, 2]  # optical axis (camera z) in the ego frame
    assert axis[2] == pytest.approx(-np.sin(np.radians(5.0)))  # looks down
    assert axis[0] == pytest.approx(np.cos(np.radians(5.0)))  # still forward
    np.testing.assert_array_equal(Domain().mount_camera(cam2ego), cam2ego)


def test_a_new_domain_changes_the_recording_not_the_world(tmp_path):
    base = generate_dataset(tmp_path / "a", _tiny())
    domain = Domain(
        name="vehicle-x", lidar_beams=16, intensity_scale=0.5, camera_height_offset_m=0.3, camera_pitch_deg=5.0
    )
    new = generate_dataset(tmp_path / "b", _tiny(domain))
    # the same street and labels
    labels = sorted((base / "surroundocc" / "samples").glob("*.npy"))
    assert labels
    for path in labels:
        np.testing.assert_array_equal(np.load(path), np.load(new / "surroundocc" / "samples" / path.name))
    assert json.loads((new / "v1.0-mini" / "log.json").read_text())[0]["vehicle"] == "vehicle-x"
    # the cameras' mount (the calibration tables say where they are)
    calib = {c["sensor_token"]: c for c in json.loads((base / "v1.0-mini" / "calibrated_sensor.json").read_text())}
    for moved in json.loads((new / "v1.0-mini" / "calibrated_sensor.json").read_text()):
        old = calib[moved["sensor_token"]]
        dz = moved["translation"][2] - old["translation"][2]
        assert dz == pytest.approx(0.0 if not old["camera_intrinsic"] else 0.3)
    # the LiDAR: 16 rings, intensity at half the scale (the same noise draws)
    a = np.fromfile(sorted((base / "samples" / "LIDAR_TOP").glob("*.bin"))[0], np.float32).reshape(-1, 5)
    b = np.fromfile(sorted((new / "samples" / "LIDAR_TOP").glob("*.bin"))[0], np.float32).reshape(-1, 5)
    assert b[:, 4].max() <= 15 and a[:, 4].max() > 15
    assert 0.4 < b[:, 3].mean() / a[:, 3].mean() < 0.6
    scaled = generate_dataset(tmp_path / "c", _tiny(Domain(intensity_scale=0.5)))
    c = np.fromfile(sorted((scaled / "samples" / "LIDAR_TOP").glob("*.bin"))[0], np.float32).reshape(-1, 5)
    np.testing.assert_array_equal(a[:, :3], c[:, :3])  # intensity_scale alone moves no point
    assert np.all(c[:, 3] <= a[:, 3] * 0.5 + 4)


def test_load_domain_and_the_shipped_vehicle(tmp_path, repo_root):
    assert load_domain(_write(tmp_path / "empty.yaml", "")) == Domain()
    shipped = load_domain(repo_root / "config" / "domains" / "vehicle_b.yaml")
    default = Domain()
    assert all(getattr(shipped, f.name) != getattr(default, f.name) for f in fields(Domain))
    for text, message in [
        ("lidar_beamz: 16", "unknown key"),
        ("colours: {spaceship: [1, 2, 3]}", "unknown class 'spaceship'"),
        ("colours: {car: [1, 2]}", "colours.car"),
        ("lidar_beams: 0", "lidar_beams"),
        ("lidar_beams: 16.5", "lidar_beams"),
        ("sun: [0, 0, 0]", "sun"),
        ("camera_pitch_deg: 60", "camera_pitch_deg"),
        ("lidar_elevation_deg: [-15, 15]", "lidar_elevation_deg"),
        ("brightness: [1]", "bad.yaml"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_domain(_write(tmp_path / "bad.yaml", text))


def test_cli_domain_and_val_scenes(tmp_path, capsys):
    domain = _write(tmp_path / "d.yaml", "name: vehicle-c\nlidar_beams: 8\n")
    argv = ["generate-scenes", "--scenes", "1", "--keyframes", "1", "--image-size", "32x18", "--sweeps", "0"]
    argv += ["--lidar-azimuths", "60", "--workers", "1", "--domain", str(domain), "--val-scenes", "1"]
    assert main([*argv, "--out", str(tmp_path / "ds")]) == 0
    splits = json.loads((tmp_path / "ds" / "splits.json").read_text())
    assert splits["train"] == [] and len(splits["val"]) == 1  # a held-out-only dataset
    assert json.loads((tmp_path / "ds" / "v1.0-mini" / "log.json").read_text())[0]["vehicle"] == "vehicle-c"
    assert main([*argv, "--out", str(tmp_path / "x"), "--val-scenes", "2"]) == 2
    assert "val_scenes" in capsys.readouterr().err
    _write(domain, "lidar_beams: -1\n")
    assert main([*argv, "--out", str(tmp_path / "y")]) == 2
    assert "lidar_beams" in capsys.readouterr().err and not (tmp_path / "y").exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
