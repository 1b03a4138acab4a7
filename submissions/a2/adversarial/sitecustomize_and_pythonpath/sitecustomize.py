import sys
sys.__stdout__.write("ADV SITECUSTOMIZE RAN\n")
sys.__stdout__.flush()
