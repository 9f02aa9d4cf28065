"""Draws the CardioScar icon: an LV (long-axis myocardium, apex down-left) with a scar patch,
its scar border and the sparse slice planes, on a rounded tile. Colours match the module's
probability colour table (healthy blue, scar red, border pale yellow)."""
import sys
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch, Polygon

ROT = np.deg2rad(-25)
R = np.array([[np.cos(ROT), -np.sin(ROT)], [np.sin(ROT), np.cos(ROT)]])

def wall(a_in, c_in, a_out, c_out, u0, u1, n=200):
    u = np.linspace(u0, u1, n)
    outer = np.stack([a_out * np.sin(u), -c_out * np.cos(u)], 1)
    inner = np.stack([a_in * np.sin(u), -c_in * np.cos(u)], 1)[::-1]
    pts = np.vstack([outer, inner]) + [0, 0.62]
    return pts @ R.T

def draw(path, size_px=128):
    fig = plt.figure(figsize=(1, 1), dpi=size_px)
    ax = fig.add_axes([0, 0, 1, 1]); ax.set_xlim(-1, 1); ax.set_ylim(-1, 1); ax.axis("off")
    fig.patch.set_alpha(0)
    ax.add_patch(FancyBboxPatch((-0.92, -0.92), 1.84, 1.84, boxstyle="round,pad=0,rounding_size=0.28",
                                fc="#f3f1ec", ec="#b9b4a8", lw=1.2))
    for y in (-0.55, -0.12, 0.31):
        ax.plot([-0.86, 0.86], [y, y], color="#8c8577", lw=1.0, dashes=(2.5, 2), zorder=1)
    ax.add_patch(Polygon(wall(0.38, 0.95, 0.62, 1.2, -np.pi / 2, np.pi / 2), fc="#3154c2", ec="#1d2f6e", lw=1.4, zorder=2))
    ax.add_patch(Polygon(wall(0.54, 1.11, 0.62, 1.2, 0.35, 1.2), fc="#f6e27a", ec="none", zorder=3))
    ax.add_patch(Polygon(wall(0.38, 0.95, 0.56, 1.13, 0.42, 1.13), fc="#c81e24", ec="#7a0c0c", lw=0.8, zorder=4))
    for y in (-0.55, -0.12, 0.31):
        ax.plot([-0.86, 0.86], [y, y], color="white", lw=1.1, alpha=0.8, dashes=(2.5, 2), zorder=5)
    fig.savefig(path, dpi=size_px, transparent=True)
    plt.close(fig)

if __name__ == "__main__":
    for p in sys.argv[1:]:
        draw(p)
