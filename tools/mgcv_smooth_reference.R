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

# The tensor-product smooth t2(x, z) (cubic regression spline margins, k = 5 each: mgcv's
# and brms's defaults) on the same rows: tests/reference/t2_mgcv_basis.csv holds mgcv's
# columns (smoothCon, constraint absorbed: the penalized blocks rr, nr, rn, then the three
# fixed columns), tests/reference/t2_mgcv.csv the REML fit on a 9 x 9 grid and its sigma.
sm_t2 <- smoothCon(t2(x, z), data = d2, absorb.cons = TRUE)[[1]]
basis <- sm_t2$X
colnames(basis) <- c(paste0("rr", 1:9), paste0("nr", 1:6), paste0("rn", 1:6), paste0("fixed", 1:3))
write.csv(round(basis, 12), "tests/reference/t2_mgcv_basis.csv", row.names = FALSE)
reml_t2 <- gam(y ~ t2(x, z), data = d2, method = "REML")
grid2 <- data.frame(x = rep(seq(1, 9, length.out = 9), each = 9), z = rep(seq(0.5, 5.5, length.out = 9), 9))
out_t2 <- data.frame(kind = c(rep("reml_grid_fit", 81), "reml_sigma"),
                     value = c(predict(reml_t2, grid2), sqrt(reml_t2$sig2)))
write.csv(out_t2, "tests/reference/t2_mgcv.csv", row.names = FALSE)
