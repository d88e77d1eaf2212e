from aethr.cli import main

main()
