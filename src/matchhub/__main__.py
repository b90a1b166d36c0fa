from matchhub.cli import main

main()
