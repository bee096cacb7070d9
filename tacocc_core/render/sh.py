"""Real spherical harmonics up to degree 3, for view-dependent Gaussian colours.

The basis, its order and its signs are those of the reference 3DGS implementation (Kerbl et al. 2023) and
of gsplat's `spherical_harmonics`, so that coefficients mean the same in both rasterisers:
index 0 is Y_00; 1..3 are -y, z, -x (times C1); 4..8 and 9..15 follow the same real-SH convention.
The constants are the orthonormalisation factors of the real SH basis (checked by quadrature in the tests).
"""

from __future__ import annotations

import torch

C0 = 0.28209479177387814  # 1 / (2 sqrt(pi))
C1 = 0.4886025119029199  # sqrt(3 / (4 pi))
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """Basis functions at unit directions.

    Args:
        degree: 0..3.
        dirs: (..., 3) unit vectors (x, y, z).

    Returns:
        (..., (degree + 1)^2) basis values.
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"sh degree must be in 0..3, got {degree}")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree >= 1:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            C2[0] * x * y,
            C2[1] * y * z,
            C2[2] * (2.0 * zz - xx - yy),
            C2[3] * x * z,
            C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            C3[0] * y * (3.0 * xx - yy),
            C3[1] * x * y * z,
            C3[2] * y * (4.0 * zz - xx - yy),
            C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            C3[4] * x * (4.0 * zz - xx - yy),
            C3[5] * z * (xx - yy),
            C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)


def sh_to_rgb(sh: torch.Tensor, means: torch.Tensor, cam_centers: torch.Tensor) -> torch.Tensor:
    """View-dependent colours of N Gaussians seen from V cameras.

    Args:
        sh: (N, K, 3) coefficients, K = (degree + 1)^2.
        means: (N, 3) Gaussian centres, any frame.
        cam_centers: (V, 3) camera centres in the same frame.

    Returns:
        (V, N, 3) colours max(SH(d) + 0.5, 0) with d the unit direction from the camera to the Gaussian
        (gsplat's `rasterization` convention for `sh_degree` given).
    """
    k = sh.shape[1]
    degree = {1: 0, 4: 1, 9: 2, 16: 3}.get(k)
    if degree is None:
        raise ValueError(f"sh_to_rgb: {k} coefficients per channel, expected 1, 4, 9 or 16")
    dirs = means[None, :, :] - cam_centers[:, None, :]
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = sh_basis(degree, dirs)  # (V, N, K)
    rgb = torch.einsum("vnk,nkc->vnc", basis, sh)
    return torch.clamp_min(rgb + 0.5, 0.0)
