"""Display geometry: planes, flips, round trips and overlay resampling, on small generated volumes."""

import numpy as np
import pytest

from viewer.model.geometry import OverlaySampler, SliceMapping, direction_letters, nearest_patient_axes
from viewer.model.volume import LPS_FROM_RAS, Volume


def rotation(axis: int, degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def oblique_affine(spacing=(0.8, 1.1, 3.0), origin=(-90.0, -120.0, 40.0), degrees=17.0) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = rotation(0, degrees) @ rotation(2, -9.0) @ np.diag(spacing)
    a[:3, 3] = origin
    return a


def test_axial_identity_is_as_stored():
    v = Volume(np.arange(2 * 3 * 4).reshape(2, 3, 4), np.eye(4))
    m = SliceMapping.for_volume(v, "axial")
    assert (m.slice_axis, m.col_axis, m.row_axis, m.col_flip, m.row_flip) == (2, 0, 1, False, False)
    np.testing.assert_array_equal(m.extract(v.data3d, 1), v.array[1])


def test_coronal_and_sagittal_have_head_up():
    # k grows toward Superior; head-up means row 0 is the highest k
    v = Volume(np.arange(5 * 3 * 4).reshape(5, 3, 4), np.eye(4))
    cor = SliceMapping.for_volume(v, "coronal")
    img = cor.extract(v.data3d, 1)
    assert img.shape == (5, 4)
    np.testing.assert_array_equal(img[0], v.array[4, 1, :])
    sag = SliceMapping.for_volume(v, "sagittal")
    img = sag.extract(v.data3d, 2)
    assert img.shape == (5, 3)
    np.testing.assert_array_equal(img[0], v.array[4, :, 2])


def test_nifti_ras_volume_shows_patient_right_on_screen_left():
    # a NIfTI in RAS with i increasing toward patient Right (typical "RAS" storage)
    ras = np.diag([1.0, 1.0, 1.0, 1.0])
    v = Volume(np.zeros((2, 3, 4)), LPS_FROM_RAS @ ras)
    m = SliceMapping.for_volume(v, "axial")
    assert m.col_flip and m.row_flip  # i → R must be reversed so that R sits on the left
    letters = m.edge_letters(v.affine)
    assert letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_screen_index_round_trip_on_oblique_volume(plane):
    v = Volume(np.zeros((7, 9, 11), np.int16), oblique_affine())
    m = SliceMapping.for_volume(v, plane)
    rng = np.random.default_rng(0)
    for _ in range(20):
        ijk = rng.uniform(0, [10, 8, 6])
        s, c, r = m.index_to_screen(ijk)
        np.testing.assert_allclose(m.screen_to_index(s, c, r), ijk, atol=1e-9)


def test_extract_matches_screen_to_index_everywhere():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 1000, (6, 7, 8)).astype(np.int16)
    aff = np.eye(4)
    aff[:3, :3] = np.array([[0, 0, -2.0], [-1.0, 0, 0], [0, 1.5, 0]])  # permuted + flipped axes
    v = Volume(data, aff)
    for plane in ("axial", "coronal", "sagittal"):
        m = SliceMapping.for_volume(v, plane)
        s = m.n_slices // 2
        img = m.extract(v.data3d, s)
        rows, cols = m.screen_shape
        for r in range(rows):
            for c in range(cols):
                i, j, k = np.rint(m.screen_to_index(s, c, r)).astype(int)
                assert img[r, c] == data[k, j, i]


def test_nearest_axes_and_letters_oblique():
    a = oblique_affine(degrees=30)
    assert nearest_patient_axes(a) == (0, 1, 2)
    assert direction_letters(np.array([0.0, -1.0, 0.5])) == "AS"
    assert direction_letters(np.array([1.0, 0.1, 0.0])) == "L"


def test_pixel_size_follows_spacing():
    v = Volume(np.zeros((4, 5, 6)), np.diag([0.5, 0.7, 3.0, 1.0]))
    assert SliceMapping.for_volume(v, "coronal").pixel_size == pytest.approx((0.5, 3.0))
    assert SliceMapping.for_volume(v, "sagittal").pixel_size == pytest.approx((0.7, 3.0))


def test_overlay_on_coarser_shifted_grid_lands_on_the_marker():
    """An overlay at half resolution with a shifted origin: its marker voxel appears where it belongs."""
    base_aff = oblique_affine(spacing=(1.0, 1.0, 2.0))
    base = Volume(np.zeros((20, 40, 40), np.int16), base_aff)
    marker_ijk = np.array([24, 14, 9])  # base voxel (i, j, k)
    marker_xyz = base.index_to_patient(marker_ijk)
    # overlay: half resolution in-plane, same slices, origin shifted by half an overlay voxel
    ov_aff = base_aff.copy()
    ov_aff[:3, 0] *= 2
    ov_aff[:3, 1] *= 2
    ov_aff[:3, 3] = base.index_to_patient([0.5, 0.5, 0])
    ov_data = np.zeros((20, 20, 20), np.uint8)
    oijk = np.rint(np.linalg.solve(ov_aff, np.append(marker_xyz, 1))[:3]).astype(int)
    ov_data[oijk[2], oijk[1], oijk[0]] = 7
    overlay = Volume(ov_data, ov_aff)
    for plane in ("axial", "coronal", "sagittal"):
        m = SliceMapping.for_volume(base, plane)
        s, c, r = m.index_to_screen(marker_ijk)
        img = OverlaySampler(base, overlay, m, order=0).sample(int(round(s)))
        assert img[int(round(r)), int(round(c))] == 7, plane
        heat = OverlaySampler(base, Volume(ov_data.astype(np.float32), ov_aff), m, order=1, fill=0).sample(
            int(round(s)))
        assert np.unravel_index(np.nanargmax(heat), heat.shape) in {
            (int(round(r)) + dr, int(round(c)) + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)}, plane


def test_same_grid_overlay_is_not_resampled():
    v = Volume(np.zeros((3, 4, 5)), np.diag([1, 2, 3, 1.0]))
    ov = Volume(np.ones((3, 4, 5), np.float32), np.diag([1, 2, 3, 1.0]))
    s = OverlaySampler(v, ov, SliceMapping.for_volume(v, "axial"), order=1)
    assert s.same_grid
    assert np.shares_memory(s.sample(1), ov.array)


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_separable_resampling_matches_per_pixel_resampling(order, plane):
    """The fast path for axis-parallel grids gives the same pixels as the general per-pixel path, also when
    the overlay's axes are permuted and flipped relative to the base's, and at the overlay's borders."""
    rng = np.random.default_rng(3)
    base = Volume(np.zeros((9, 20, 24), np.int16), oblique_affine(spacing=(1.0, 1.2, 2.0)))
    # overlay axes: i' = -k (flipped), j' = i / 3, k' = j / 2, with an offset: a cropped, coarser grid
    perm = np.zeros((4, 4))
    perm[:3, :3] = [[0, 0, -1.0], [3.0, 0, 0], [0, 2.0, 0]]
    perm[:3, 3] = (8.4, 1.3, -0.7)
    perm[3, 3] = 1
    ov_affine = base.affine @ np.linalg.inv(perm)
    data = rng.random((8, 7, 10)).astype(np.float32)  # [k', j', i']
    if order == 0:
        data = (data * 5).astype(np.uint8)
    overlay = Volume(data, ov_affine)
    m = SliceMapping.for_volume(base, plane)
    sampler = OverlaySampler(base, overlay, m, order=order, fill=0)
    assert sampler._feeds is not None
    for s in range(m.n_slices):
        fast = sampler._sample_separable(s)
        slow = sampler._sample_general(s)
        np.testing.assert_allclose(fast, slow, atol=1e-5, err_msg=f"{plane} slice {s}")


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_native_slice_places_overlay_pixels_where_resampling_does(plane):
    """Drawing the overlay's own pixels in the returned rectangle puts each overlay pixel over the screen
    pixels that per-pixel resampling (nearest) gives its value to."""
    rng = np.random.default_rng(5)
    base = Volume(np.zeros((9, 20, 24), np.int16), oblique_affine(spacing=(1.0, 1.2, 2.0)))
    perm = np.zeros((4, 4))
    perm[:3, :3] = [[0, 0, -1.0], [3.0, 0, 0], [0, 2.0, 0]]
    perm[:3, 3] = (8.4, 1.3, -0.7)
    perm[3, 3] = 1
    overlay = Volume(rng.integers(1, 200, (8, 7, 10)).astype(np.uint8), base.affine @ np.linalg.inv(perm))
    m = SliceMapping.for_volume(base, plane)
    sampler = OverlaySampler(base, overlay, m, order=0)
    for s in range(m.n_slices):
        expected = sampler._sample_general(s)
        native = sampler.native_slice(s)
        if native is None:
            assert not expected.any()
            continue
        img, (x, y, w, h) = native
        rows, cols = m.screen_shape
        for r in range(rows):
            for c in range(cols):
                # screen pixel centre (c + 0.5, r + 0.5) in the rectangle → native pixel
                u, v = (c + 0.5 - x) / w * img.shape[1], (r + 0.5 - y) / h * img.shape[0]
                if 0 <= u < img.shape[1] and 0 <= v < img.shape[0]:
                    assert img[int(v), int(u)] == expected[r, c], (plane, s, r, c)
                else:
                    assert expected[r, c] == 0, (plane, s, r, c)
