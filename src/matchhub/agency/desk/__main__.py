from matchhub.agency.desk import main

main()
