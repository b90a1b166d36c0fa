from matchhub.cli.main import main

main()
