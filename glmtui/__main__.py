from glmtui.cli import main

main()
