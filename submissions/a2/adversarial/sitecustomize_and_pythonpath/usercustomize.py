import sys
sys.__stdout__.write("ADV USERCUSTOMIZE RAN\n")
sys.__stdout__.flush()
