from shipboard.cli import main

main()
