# An example module in shell: run with bash, like any `.sh` module. Replace it
# with your own. Exit 0: success; exit 10: skipped; any other code: failed.
set -euo pipefail

if [ "$PIPELINE_DRY_RUN" = 1 ]; then
    echo "dry run: nothing to check"
    exit 0
fi

# A workflow command: a warning in the log, an annotation on GitHub Actions.
free_mb=$(df -Pm "$PIPELINE_LOG_DIR" | awk 'NR == 2 {print $4}')
if [ "$free_mb" -lt 500 ]; then
    echo "::warning::only ${free_mb} MB free under $PIPELINE_LOG_DIR"
fi
echo "run $PIPELINE_RUN_ID: ${free_mb} MB free under $PIPELINE_LOG_DIR"
