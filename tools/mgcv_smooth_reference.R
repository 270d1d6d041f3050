# References for bayesmm's s() (tests/test_smooth.py), from R 4.2 with mgcv (Debian's r-cran-mgcv):
#   Rscript tools/mgcv_smooth_reference.R
# Reads tests/reference/smooth_data.csv (x, y) and writes tests/reference/smooth_mgcv.csv:
# mgcv's fitted values of y ~ s(x, bs = "cr", k = 10) at a fixed smoothing parameter sp = 2
# (checks the basis and penalty exactly), the REML fit's curve on a grid, and S.scale
# (mgcv rescales the penalty: its sp is bayesmm's lambda times S.scale).
library(mgcv)
d <- read.csv("tests/reference/smooth_data.csv")
fixed <- gam(y ~ s(x, bs = "cr", k = 10), data = d, sp = 2)
reml <- gam(y ~ s(x, bs = "cr", k = 10), data = d, method = "REML")
grid <- data.frame(x = seq(min(d$x), max(d$x), length.out = 50))
sm <- smoothCon(s(x, bs = "cr", k = 10), data = d, knots = NULL)[[1]]
out <- data.frame(
  kind = c(rep("fitted_sp2", nrow(d)), rep("reml_grid_x", 50), rep("reml_grid_fit", 50), "S_scale",
           rep("knot", length(sm$xp)), "reml_sigma"),
  value = c(fitted(fixed), grid$x, predict(reml, grid), sm$S.scale, sm$xp, sqrt(reml$sig2))
)
write.csv(out, "tests/reference/smooth_mgcv.csv", row.names = FALSE)

# The thin-plate regression spline, mgcv's and brms's default s(x) (bs = "tp"), the same way:
# tests/reference/smooth_mgcv_tp.csv.
fixed_tp <- gam(y ~ s(x, bs = "tp", k = 10), data = d, sp = 2)
reml_tp <- gam(y ~ s(x, bs = "tp", k = 10), data = d, method = "REML")
sm_tp <- smoothCon(s(x, bs = "tp", k = 10), data = d, knots = NULL)[[1]]
out_tp <- data.frame(
  kind = c(rep("fitted_sp2", nrow(d)), rep("reml_grid_x", 50), rep("reml_grid_fit", 50), "S_scale", "reml_sigma"),
  value = c(fitted(fixed_tp), grid$x, predict(reml_tp, grid), sm_tp$S.scale, sqrt(reml_tp$sig2))
)
write.csv(out_tp, "tests/reference/smooth_mgcv_tp.csv", row.names = FALSE)

# A thin-plate smooth of two columns, s(x, z, k = 30) (mgcv's default k for two), on
# tests/reference/smooth2_data.csv: tests/reference/smooth2_mgcv.csv.
d2 <- read.csv("tests/reference/smooth2_data.csv")
fixed_xz <- gam(y ~ s(x, z, k = 30), data = d2, sp = 2)
sm_xz <- smoothCon(s(x, z, k = 30), data = d2, knots = NULL)[[1]]
out_xz <- data.frame(kind = c(rep("fitted_sp2", nrow(d2)), "S_scale"), value = c(fitted(fixed_xz), sm_xz$S.scale))
write.csv(out_xz, "tests/reference/smooth2_mgcv.csv", row.names = FALSE)
