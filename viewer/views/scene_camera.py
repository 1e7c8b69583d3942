"""The 3D scene's camera: the six patient-side presets, framing the visible content, orbit, zoom and pan.

:class:`SceneCamera` is a part of :class:`~viewer.views.vtk_scene.Scene3D` (its base class); it uses the
scene's ``renderer``, ``window``, ``document``, base layer, transfer function and overlays.
"""

from __future__ import annotations

import numpy as np

from viewer.views.transfer_functions import content_bounds, visible_from
from viewer.views.vtk_grid import patient_bounds

CAMERAS = ("A", "P", "L", "R", "S", "I")

# Camera presets in patient LPS: (direction of projection = where the camera looks, view up).
# Screen right = direction × up, so from "A" patient Left is on screen right, from "I" too (radiological
# axial), from "L" Posterior is on screen right, from "R" Anterior, from "P" and "S" patient Right.
_CAMERA_FRAMES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "A": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),    # camera anterior of the face, looking toward posterior
    "P": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),   # behind the head, looking toward anterior
    "L": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),   # at the patient's left, looking toward the right
    "R": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),    # at the patient's right, looking toward the left
    "S": ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),  # above the head, looking down; anterior up
    "I": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),   # below the feet, looking up; anterior up
}


class SceneCamera:
    """The camera methods of :class:`~viewer.views.vtk_scene.Scene3D` (patient LPS mm)."""

    def bounds(self) -> tuple[float, float, float, float, float, float]:
        """LPS mm bounds that the camera presets frame: the visible content of the base volume.

        That is the voxels the current preset makes visible (so that a head in a large field of view fills
        the view), or the whole volume when there are none.
        """
        if self._content_bounds is None:
            vol = self.document.base
            b = None
            if self._base_layer is not None and not vol.rgb and not vol.is_2d:
                b = content_bounds(vol, visible_from(self.transfer_function()))
            self._content_bounds = b or patient_bounds(vol)
        return self._content_bounds

    def framed_bounds(self) -> tuple[float, float, float, float, float, float]:
        """:meth:`bounds` grown to hold the visible overlay surfaces (what camera presets frame)."""
        b = np.array(self.bounds(), float).reshape(3, 2)
        for props in self._overlays.values():
            for a in props.actors:
                if a.GetVisibility():
                    ab = np.array(a.GetBounds(), float).reshape(3, 2)
                    if np.all(np.isfinite(ab)) and np.all(ab[:, 1] >= ab[:, 0]):
                        b[:, 0] = np.minimum(b[:, 0], ab[:, 0])
                        b[:, 1] = np.maximum(b[:, 1], ab[:, 1])
        return tuple(float(v) for v in b.reshape(-1))  # type: ignore[return-value]

    def set_camera(self, name: str) -> None:
        """Look at the base volume from patient side ``name`` (A, P, L, R, S or I); see :data:`CAMERAS`."""
        key = name.upper()
        if key not in _CAMERA_FRAMES:
            raise KeyError(f"unknown camera {name!r}; choose one of {CAMERAS}")
        direction, up = _CAMERA_FRAMES[key]
        b = np.array(self.framed_bounds()).reshape(3, 2)
        centre = b.mean(1)
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(*centre)
        cam.SetPosition(*(centre - 500.0 * np.asarray(direction)))
        cam.SetViewUp(*up)
        cam.SetViewAngle(30.0)
        self._fit(cam, centre, np.asarray(direction, float), np.asarray(up, float))
        self.camera_name = key
        self.changed()

    def _fit(self, cam, centre: np.ndarray, direction: np.ndarray, up: np.ndarray, margin: float = 1.12) -> None:
        """Place the camera on ``-direction`` from ``centre`` so that the framed box just fills the view."""
        b = np.array(self.framed_bounds()).reshape(3, 2)
        corners = np.array([[x, y, z] for x in b[0] for y in b[1] for z in b[2]]) - centre
        right = np.cross(direction, up)
        half_w = np.abs(corners @ right).max()
        half_h = np.abs(corners @ up).max()
        half_d = np.abs(corners @ direction).max()
        w, h = self.window.GetSize()
        aspect = w / h if h > 0 else 1.0
        t = np.tan(np.radians(cam.GetViewAngle() / 2))
        dist = margin * max(half_h / t, half_w / (t * aspect)) + half_d
        cam.SetPosition(*(centre - dist * direction))
        self.renderer.ResetCameraClippingRange()

    def camera_state(self) -> dict[str, list[float]]:
        """Camera position, focal point, view-up (patient LPS mm) and view angle, for workspaces."""
        cam = self.renderer.GetActiveCamera()
        return {"position": list(cam.GetPosition()), "focal_point": list(cam.GetFocalPoint()),
                "view_up": list(cam.GetViewUp()), "view_angle": [cam.GetViewAngle()]}

    def set_camera_state(self, state: dict[str, list[float]]) -> None:
        """Restore a :meth:`camera_state`."""
        cam = self.renderer.GetActiveCamera()
        cam.SetPosition(*state["position"])
        cam.SetFocalPoint(*state["focal_point"])
        cam.SetViewUp(*state["view_up"])
        cam.SetViewAngle(state["view_angle"][0])
        self.renderer.ResetCameraClippingRange()
        self.changed()

    def reset_camera(self) -> None:
        """Back to the anterior view, framing the whole volume."""
        self.set_camera("A")

    def rotate(self, azimuth_deg: float, elevation_deg: float) -> None:
        """Orbit the camera about its focal point (degrees; positive azimuth turns the scene to the left)."""
        cam = self.renderer.GetActiveCamera()
        cam.Azimuth(azimuth_deg)
        cam.Elevation(elevation_deg)
        cam.OrthogonalizeViewUp()
        self.renderer.ResetCameraClippingRange()
        self.changed()

    def zoom(self, factor: float) -> None:
        """Move the camera toward (factor > 1) or away from the focal point."""
        self.renderer.GetActiveCamera().Dolly(factor)
        self.renderer.ResetCameraClippingRange()
        self.changed()

    def pan(self, dx_px: float, dy_px: float) -> None:
        """Shift the view by (dx, dy) screen pixels (x right, y down), moving camera and focal point."""
        cam = self.renderer.GetActiveCamera()
        w, h = self.window.GetSize()
        pos, fp = np.array(cam.GetPosition()), np.array(cam.GetFocalPoint())
        dist = float(np.linalg.norm(pos - fp))
        mm_per_px = 2.0 * dist * np.tan(np.radians(cam.GetViewAngle() / 2)) / max(h, 1)
        up = np.array(cam.GetViewUp())
        right = np.cross(fp - pos, up)
        right /= np.linalg.norm(right) or 1.0
        shift = (-dx_px * right + dy_px * up) * mm_per_px
        cam.SetPosition(*(pos + shift))
        cam.SetFocalPoint(*(fp + shift))
        self.renderer.ResetCameraClippingRange()
        self.changed()
